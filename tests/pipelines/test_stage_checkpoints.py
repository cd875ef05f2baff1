"""The nodes' side of issue 12 parts 2 and 4: checkpoint settings, resume through a node,
and stale inputs refused with both fingerprints named."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import die_after_save
import pytest
import torch

from wpnas.data.sources import DataConfig, build_image_splits
from wpnas.errors import ConfigError, DataError
from wpnas.pipelines.ground_truth.nodes import finetune_pairs
from wpnas.pipelines.params import KEEP_FINISHED_ENV, checkpoint_policy, validate_parameters
from wpnas.pipelines.warmup.nodes import warmup_supernet as warmup_node

SPACE = {"name": "nats_tss", "options": {"nats_tss": {"C": 4, "N": 1}}}
WARMUP = {"epochs": 3, "batch_size": 32, "probe_archs": 0, "augment": {"crop_padding": 1, "flip": False}}


@pytest.fixture(scope="module")
def splits8():
    return build_image_splits(DataConfig(image_size=8, train_limit=200, valid_size=0.5))


def _run(tmp_path: Path) -> dict:
    return {"seed": 0, "device": "cpu", "checkpoint_dir": str(tmp_path / "checkpoints")}


@pytest.mark.parametrize("key,value,match", [
    ("checkpoint_every", -1, "warmup.checkpoint_every"),
    ("checkpoint_every", 1.5, "warmup.checkpoint_every"),
    ("resume", "yes", "warmup.resume"),
])
def test_checkpoint_settings_are_checked_up_front_with_their_full_key(key, value, match):
    with pytest.raises(ConfigError, match=match):
        validate_parameters({"warmup": {**WARMUP, key: value}})
    policy = checkpoint_policy({"checkpoint_every": 2, "resume": False}, {"checkpoint_dir": "x"}, "ground_truth")
    assert (policy.every, policy.resume, policy.folder) == (2, False, "x")
    assert checkpoint_policy({}, None, "warmup").folder == "data/09_checkpoints"


def test_warmup_node_resumes_a_killed_run_from_the_checkpoint_folder(splits8, tmp_path, monkeypatch):
    die_after_save(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        warmup_node(splits8, _run(tmp_path), SPACE, WARMUP)
    monkeypatch.undo()
    (left,) = (tmp_path / "checkpoints").glob("warmup-*.pt")
    checkpoint, summary = warmup_node(splits8, _run(tmp_path), SPACE, WARMUP)
    assert left.name == f"warmup-{checkpoint['fingerprint']['fingerprint']}.pt"
    assert summary["epochs"] == 3 and [h["epoch"] for h in checkpoint["history"]] == [1, 2, 3]
    assert not left.exists()  # outside Kedro the finished node removes its file
    # In a Kedro run (StageFileHooks sets KEEP_FINISHED_ENV) the finished state stays until the outputs are
    # saved (the hook removes it then): a failed save is redone by running the node again, with no training.
    with monkeypatch.context() as patch:
        patch.setenv(KEEP_FINISHED_ENV, "1")
        first, _ = warmup_node(splits8, _run(tmp_path), SPACE, WARMUP)
        assert left.exists()
        die_after_save(patch, when=lambda state: not state.get("resume_finished"), error=AssertionError)
        again, _ = warmup_node(splits8, _run(tmp_path), SPACE, WARMUP)
    assert again["history"] == first["history"] and again["fingerprint"] == first["fingerprint"]
    assert all(torch.equal(again["state_dict"][k], v) for k, v in first["state_dict"].items())
    left.unlink()
    # resume: false starts afresh; checkpoint_every: 0 writes nothing during the stage
    die_after_save(monkeypatch)  # any save would now raise
    checkpoint, _ = warmup_node(splits8, _run(tmp_path), SPACE, {**WARMUP, "checkpoint_every": 0, "resume": False})
    assert checkpoint["epoch"] == 3


def test_ground_truth_refuses_a_supernet_warmed_on_other_splits(splits8, tmp_path):
    warmed, _ = warmup_node(splits8, _run(tmp_path), SPACE, {**WARMUP, "epochs": 1})
    resized = build_image_splits(DataConfig(image_size=6, train_limit=200, valid_size=0.5))
    gt = {"num_archs": 2, "epochs": 1, "batch_size": 32, "calib_batches": 1}
    with pytest.raises(DataError, match=r"input_shape: \[1,6,6\] != \[1,8,8\]") as err:
        finetune_pairs(warmed, resized, _run(tmp_path), SPACE, gt)
    assert warmed["inputs"]["image_splits"]["fingerprint"] in str(err.value)
    assert resized.fingerprint()["fingerprint"] in str(err.value)
    assert not (tmp_path / "checkpoints").exists() or not list((tmp_path / "checkpoints").iterdir())


def test_an_unwritable_checkpoint_folder_fails_before_training(tmp_path):
    from types import SimpleNamespace

    from wpnas.errors import StorageError
    from wpnas.pipelines.preflight import check_pipeline_outputs

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    params = {"run": {"checkpoint_dir": str(blocker / "checkpoints")}, "space": SPACE,
              "data": {"image_size": 8}, "warmup": WARMUP}
    pipeline = SimpleNamespace(nodes=[SimpleNamespace(name="warmup_supernet", outputs=[])])
    with pytest.raises(StorageError, match=r"in-progress checkpoints of warmup \(run.checkpoint_dir\)"):
        check_pipeline_outputs(pipeline, {}, params)
    check_pipeline_outputs(pipeline, {}, {**params, "warmup": {**WARMUP, "checkpoint_every": 0}})  # none written


def test_search_refuses_a_predictor_trained_on_other_pairs():
    import pandas as pd

    from wpnas.io.pairs import pairs_fingerprint
    from wpnas.pipelines.search.nodes import search_architecture as search_node

    pairs = pd.DataFrame({"arch": ["a", "b", "c"], "accuracy": [50.0, 60.0, 70.0]})
    other = pairs.assign(accuracy=[50.0, 61.0, 70.0])
    weights = {"format": "whatever", "inputs": {"arch_accuracy_pairs": pairs_fingerprint(pairs)}}
    with pytest.raises(DataError, match=r"predictor_weights was made from other inputs.*accuracy: ") as err:
        search_node({}, weights, other, None, {"device": "cpu"}, SPACE,
                    {"method": "wpnas", "wpnas": {"reward": {"b1": 0.01}}})
    assert pairs_fingerprint(pairs)["fingerprint"] in str(err.value)
    assert pairs_fingerprint(other)["fingerprint"] in str(err.value)
    # the CSV round trip keeps the fingerprint
    import io

    buffer = io.StringIO()
    pairs.assign(accuracy=[50.123456789, 60.0, 70.0]).to_csv(buffer, index=False)
    buffer.seek(0)
    assert pairs_fingerprint(pd.read_csv(buffer)) == pairs_fingerprint(pairs.assign(accuracy=[50.123456789, 60, 70]))


def test_ground_truth_summary_names_what_the_pairs_came_from(splits8, tmp_path):
    from wpnas.io.pairs import pairs_fingerprint
    from wpnas.pipelines.ground_truth.nodes import acquire_ground_truth as acquire_pairs

    warmed, _ = warmup_node(splits8, _run(tmp_path), SPACE, {**WARMUP, "epochs": 1})
    gt = {"num_archs": 2, "epochs": 0, "batch_size": 32, "calib_batches": 1}
    pairs, summary = acquire_pairs(warmed, splits8, _run(tmp_path), SPACE, gt)
    assert summary["inputs"] == {"image_splits": splits8.fingerprint()["fingerprint"],
                                 "warmed_supernet": warmed["fingerprint"]["fingerprint"]}
    assert summary["pairs_fingerprint"] == pairs_fingerprint(pairs)["fingerprint"]
    assert not list((tmp_path / "checkpoints").glob("ground_truth-*"))  # finished: removed


def test_search_refuses_pairs_fine_tuned_from_another_warmed_supernet():
    """WarmUp run again after the ground truth: the pairs (and the predictor) describe the old SuperNet."""
    import pandas as pd

    from wpnas.io.pairs import pairs_fingerprint
    from wpnas.pipelines.search.nodes import search_architecture as search_node

    pairs = pd.DataFrame({"arch": ["a", "b", "c"], "accuracy": [50.0, 60.0, 70.0]})
    summary = {"source": "finetune", "inputs": {"warmed_supernet": "0123456789abcdef"},
               "pairs_fingerprint": pairs_fingerprint(pairs)["fingerprint"]}
    rewarmed = {"fingerprint": {"fingerprint": "fedcba9876543210"}}
    search = {"method": "wpnas", "wpnas": {"reward": {"b1": 0.01}}}
    with pytest.raises(DataError, match=r"fingerprint 0123456789abcdef, but warmed_supernet has fingerprint "
                                        r"fedcba9876543210.*ground_truth and predictor"):
        search_node(rewarmed, {}, pairs, None, {"device": "cpu"}, SPACE, search, summary)
    # not compared: pairs from a benchmark table, or a summary of another table
    from wpnas.io.pairs import check_pairs_source

    check_pairs_source({**summary, "source": "benchmark"}, pairs, "fedcba9876543210")
    check_pairs_source(summary, pairs.assign(accuracy=[1.0, 2.0, 3.0]), "fedcba9876543210")
    check_pairs_source(summary, pairs, "0123456789abcdef")  # the same SuperNet
