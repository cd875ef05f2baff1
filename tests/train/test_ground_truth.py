import numpy as np
import pytest
import torch

from wpnas.config import from_dict, seed_everything
from wpnas.errors import ConfigError
from wpnas.io.supernet_checkpoint import restore_supernet
from wpnas.spaces import get_space
from wpnas.train.ground_truth import COLUMNS, GroundTruthConfig, acquire_ground_truth, sample_architectures
from wpnas.train.warmup import WarmupConfig, warmup_supernet


@pytest.fixture(scope="module")
def warmed(tiny_splits):
    seed_everything(0)
    space = get_space("nats_tss", C=4, N=1)
    ck = warmup_supernet(space, tiny_splits, WarmupConfig(epochs=1, batch_size=32, probe_archs=0), torch.device("cpu"))
    return space, ck


def test_finetune_source_table_and_independence(tiny_splits, warmed):
    space, ck = warmed
    supernet = restore_supernet(ck, "cpu")
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    cfg = from_dict(GroundTruthConfig, {"num_archs": 3, "epochs": 1, "batch_size": 32, "calib_batches": 1})
    pairs = acquire_ground_truth(space, cfg, seed=0, supernet=supernet, splits=tiny_splits, device="cpu")
    assert list(pairs.columns) == COLUMNS and len(pairs) == 3
    assert pairs["arch"].map(space.from_string).map(len).eq(space.num_decisions).all()
    assert pairs["accuracy"].between(0, 100).all() and pairs["seconds"].gt(0).all()
    assert (pairs["source"] == "finetune:1ep").all()
    costs = [space.cost(a, tiny_splits.input_shape, 10).flops_m for a in pairs["arch"]]
    assert np.allclose(pairs["flops_m"], costs)
    # every architecture starts from the same warmed weights: the SuperNet is untouched
    for key, value in supernet.state_dict().items():
        if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue
        assert torch.equal(value, before[key]), key


def test_same_architecture_twice_gives_the_same_accuracy(tiny_splits, warmed):
    space, ck = warmed
    supernet = restore_supernet(ck, "cpu")
    cfg = from_dict(GroundTruthConfig, {"num_archs": 2, "epochs": 1, "batch_size": 32, "calib_batches": 1})
    arch = sample_architectures(space, 2, 0)[0]
    a = acquire_ground_truth(space, cfg, 0, supernet=supernet, splits=tiny_splits, archs=[arch])
    b = acquire_ground_truth(space, cfg, 0, supernet=supernet, splits=tiny_splits, archs=[arch])
    assert a["accuracy"].iloc[0] == pytest.approx(b["accuracy"].iloc[0])


def test_benchmark_source_uses_the_table(shared_data):
    space = get_space("nats_tss")
    cfg = from_dict(GroundTruthConfig, {
        "source": "benchmark", "num_archs": 20,
        "benchmark": {"kind": "csv", "path": str(shared_data / "nb201" / "nb201_cifar10.csv"),
                      "metric": "cifar10_valid_200ep"},
    })
    pairs = acquire_ground_truth(space, cfg, seed=1)
    assert len(pairs) == 20 and pairs["arch"].is_unique
    import pandas as pd

    table = pd.read_csv(shared_data / "nb201" / "nb201_cifar10.csv").set_index("arch")
    assert np.allclose(pairs["accuracy"].to_numpy(), table.loc[pairs["arch"], "cifar10_valid_200ep"].to_numpy())
    assert (pairs["seconds"] == 0).all()


def test_bad_ground_truth_settings():
    with pytest.raises(ConfigError, match="benchmark"):
        GroundTruthConfig(source="benchmark")
    with pytest.raises(ConfigError, match="num_archs"):
        GroundTruthConfig(num_archs=1)
    with pytest.raises(ConfigError, match="'oracle'"):
        from_dict(GroundTruthConfig, {"source": "oracle"})


def test_logs_a_summary_not_lines_per_architecture(tiny_splits, warmed, caplog):
    """Redirected output: at most one progress line per 30 s, then one summary line."""
    import logging

    space, ck = warmed
    cfg = from_dict(GroundTruthConfig, {"num_archs": 3, "epochs": 0, "batch_size": 32, "calib_batches": 1})
    caplog.set_level(logging.INFO, logger="wpnas")
    pairs = acquire_ground_truth(space, cfg, seed=0, supernet=restore_supernet(ck, "cpu"), splits=tiny_splits)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(lines) == 1, lines
    assert lines[0].startswith("ground truth: 3 architectures") and f"best {pairs['accuracy'].max():.2f} %" in lines[0]


def test_summary_of_a_pairs_table():
    import pandas as pd

    from wpnas.train.ground_truth import summarize

    pairs = pd.DataFrame({"arch": ["a", "b", "c"], "accuracy": [50.0, 80.0, 20.0], "seconds": [1.0, 2.0, 3.0]})
    assert summarize(pairs) == {"count": 3, "accuracy_mean": 50.0, "accuracy_best": 80.0, "accuracy_worst": 20.0,
                                "best_arch": "b", "seconds_total": 6.0}


def test_killed_and_resumed_ground_truth_redoes_no_architecture(tiny_splits, warmed, tmp_path, monkeypatch):
    import wpnas.train.ground_truth as gt
    from wpnas.io.stage_checkpoint import CheckpointPolicy, StageCheckpoint

    space, ck = warmed
    cfg = from_dict(GroundTruthConfig, {"num_archs": 4, "epochs": 1, "batch_size": 32, "calib_batches": 1})
    policy = CheckpointPolicy(every=1, folder=str(tmp_path / "ck"))
    straight = acquire_ground_truth(space, cfg, 0, supernet=restore_supernet(ck, "cpu"), splits=tiny_splits)

    real_save, real_finetune = StageCheckpoint.save, gt.finetune_architecture
    calls = []

    def save_then_die(self, state):
        real_save(self, state)
        if len(state["rows"]) == 2:
            raise KeyboardInterrupt("killed after 2 architectures")

    def counted(supernet, arch, *args, **kwargs):
        calls.append(space.to_string(arch))
        return real_finetune(supernet, arch, *args, **kwargs)

    monkeypatch.setattr(gt, "finetune_architecture", counted)
    monkeypatch.setattr(StageCheckpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        acquire_ground_truth(space, cfg, 0, supernet=restore_supernet(ck, "cpu"), splits=tiny_splits, checkpoint=policy)
    assert len(calls) == 2 and len(list((tmp_path / "ck").glob("ground_truth-*.pt"))) == 1
    monkeypatch.setattr(StageCheckpoint, "save", real_save)
    resumed = acquire_ground_truth(space, cfg, 0, supernet=restore_supernet(ck, "cpu"), splits=tiny_splits,
                                   checkpoint=policy)
    assert len(calls) == 4 and calls[2:] == list(straight["arch"][2:])  # the first two are not redone
    assert resumed[["arch", "accuracy", "flops_m", "params_m", "source"]].equals(
        straight[["arch", "accuracy", "flops_m", "params_m", "source"]])
    assert list((tmp_path / "ck").iterdir()) == []
    # other inputs (here another seed and architectures) never pick up these rows
    calls.clear()
    acquire_ground_truth(space, cfg, 1, supernet=restore_supernet(ck, "cpu"), splits=tiny_splits,
                         archs=sample_architectures(space, 2, 0), checkpoint=policy)
    assert len(calls) == 2
