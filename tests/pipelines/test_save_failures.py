"""Issue 23 part 2: a save that would fail is found before training, and one that fails anyway
loses no finished stage; killed writes leave nothing that a later run trips over."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from kedro.io import DataCatalog

from tests.conftest import latest, run_kedro, versions
from wpnas.errors import CheckpointError, StorageError, TrainingError
from wpnas.io.stage_checkpoint import CheckpointPolicy
from wpnas.pipelines.preflight import check_pipeline_outputs
from wpnas.pipelines.run_guard import LOCK_FILE

V1 = "2026-01-01T00.00.00.000Z"
SPACE = {"name": "nats_tss", "options": {"nats_tss": {"C": 4, "N": 1}}}
WARMUP_NODE = SimpleNamespace(nodes=[SimpleNamespace(name="warmup_supernet", outputs=["warmed_supernet"])])


def _catalog(models: Path) -> DataCatalog:
    config = {"warmed_supernet": {"type": "wpnas.pipelines.datasets.TorchCheckpointDataset", "versioned": True,
                                  "filepath": str(models / "warmed_supernet.pt")}}
    return DataCatalog.from_config(config, save_version=V1)


def _params(tmp_path: Path) -> dict:
    return {"run": {"checkpoint_dir": str(tmp_path / "checkpoints")}, "space": SPACE, "data": {"image_size": 8},
            "warmup": {"epochs": 1}}


def test_preflight_checks_the_version_folder_the_save_will_write(tmp_path):
    # `chattr +i data/06_models/warmed_supernet.pt` (or a file there): its parent folder is
    # writable, which is all the check used to look at; the save failed after the WarmUp.
    models = tmp_path / "06_models"
    models.mkdir()
    (models / "warmed_supernet.pt").write_text("a file where the version folders go")
    with pytest.raises(StorageError, match=rf"output 'warmed_supernet': output folder "
                                           rf"'.*warmed_supernet.pt/{V1}' is not writable"):
        check_pipeline_outputs(WARMUP_NODE, _catalog(models), _params(tmp_path))


def test_preflight_measures_free_space_where_the_version_folder_is(tmp_path, monkeypatch):
    # a tiny tmpfs mounted at data/06_models/warmed_supernet.pt: faked by the free space of that folder
    models = tmp_path / "06_models"
    (models / "warmed_supernet.pt").mkdir(parents=True)
    real = shutil.disk_usage

    def usage(path):
        found = real(path)
        return found._replace(free=4096) if "warmed_supernet.pt" in str(path) else found

    monkeypatch.setattr(shutil, "disk_usage", usage)
    with pytest.raises(StorageError, match=rf"output 'warmed_supernet': not enough free space in "
                                           rf"'.*warmed_supernet.pt/{V1}'"):
        check_pipeline_outputs(WARMUP_NODE, _catalog(models), _params(tmp_path))
    assert not (models / "warmed_supernet.pt" / V1).exists()  # the check leaves no empty version folder


def test_temporary_files_of_killed_writes_are_removed_before_the_run(tmp_path):
    models = tmp_path / "06_models"
    old = models / "warmed_supernet.pt" / "2025-12-31T00.00.00.000Z"
    old.mkdir(parents=True)
    (old / ".warmed_supernet.pt.k1ll3d.tmp").write_bytes(b"")  # a write killed with SIGKILL
    kept = tmp_path / "06_models" / "warmed_supernet.pt" / "2025-12-30T00.00.00.000Z"
    kept.mkdir()
    (kept / "warmed_supernet.pt").write_bytes(b"a good version")
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / ".warmup-0123456789abcdef.pt.x1y2z3.tmp").write_bytes(b"partial")
    (checkpoints / "warmup-0123456789abcdef.pt").write_bytes(b"an in-progress checkpoint")
    check_pipeline_outputs(WARMUP_NODE, _catalog(models), _params(tmp_path))
    assert not old.exists()  # the version folder held only the temporary file
    assert sorted(p.name for p in checkpoints.iterdir()) == ["warmup-0123456789abcdef.pt"]
    assert (kept / "warmed_supernet.pt").read_bytes() == b"a good version"


def test_a_diverged_state_is_never_checkpointed_and_a_nan_file_is_refused_with_a_way_out(tmp_path):
    store = CheckpointPolicy(folder=str(tmp_path)).store("warmup", "0123456789abcdef")
    good = {"state_dict": {"w": torch.ones(3)}, "epoch": 1}
    store.save(good)
    before = store.path.read_bytes()
    with pytest.raises(TrainingError, match=r"warmup: training diverged \(state_dict.w holds NaN\); the "
                                            r"in-progress checkpoint was not written"):
        store.save({"state_dict": {"w": torch.tensor([1.0, float("nan"), 2.0])}, "epoch": 2})
    assert store.path.read_bytes() == before
    # a NaN file written before this check, and a truncated file: each error says how to recover
    torch.save({"state_dict": {"w": torch.full((2,), float("nan"))}, "resume_stage": "warmup",
                "resume_fingerprint": "0123456789abcdef"}, store.path)
    with pytest.raises(CheckpointError, match=r"holds NaN \(state_dict.w; a diverged run\).*delete '.*warmup-"
                                              r"0123456789abcdef.pt' to redo the stage .*warmup.resume: false"):
        store.load()
    store.path.write_bytes(before[: len(before) // 2])
    with pytest.raises(CheckpointError, match=r"in-progress checkpoint '.*' is corrupt .*; delete .* or set "
                                              r"warmup.resume: false"):
        store.load()


def _warmup_params() -> dict:
    return {"data.image_size": 8, "data.train_limit": 200, "warmup.epochs": 2, "warmup.batch_size": 32,
            "warmup.probe_archs": 0, "run.device": "cpu", "space.name": "nats_tss"}


@pytest.mark.slow
def test_a_failed_artifact_save_leaves_the_finished_stage_resumable(kedro_project, monkeypatch):
    # Before: the stage removed its in-progress checkpoint before Kedro saved warmed_supernet,
    # so a full disk at that save lost the whole WarmUp.
    from wpnas.pipelines import datasets

    real = datasets.save_checkpoint

    def full_disk_for_the_supernet(data, path):
        if "warmed_supernet" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(data, path)

    run_kedro(kedro_project, "data_processing", _warmup_params())
    with monkeypatch.context() as patch:  # (monkeypatch.undo would also undo kedro_project's chdir)
        patch.setattr(datasets, "save_checkpoint", full_disk_for_the_supernet)
        with pytest.raises(Exception, match="No space left"):
            run_kedro(kedro_project, "warmup", _warmup_params())
    (left,) = (kedro_project / "data/09_checkpoints").glob("warmup-*.pt")
    finished = torch.load(left, weights_only=True)
    assert finished["resume_finished"] is True and finished["epoch"] == 2
    assert not versions(kedro_project / "data/06_models/warmed_supernet.pt")
    assert not (kedro_project / LOCK_FILE).exists()
    run = run_kedro(kedro_project, "warmup", _warmup_params())
    assert run.info.status == "FINISHED"
    saved = torch.load(latest(kedro_project / "data/06_models/warmed_supernet.pt"), weights_only=True)
    assert saved["history"] == finished["history"]  # the same epochs (their timings too): nothing retrained
    assert all(torch.equal(saved["state_dict"][k], v) for k, v in finished["state_dict"].items())
    assert not list((kedro_project / "data/09_checkpoints").glob("*.pt"))  # removed once the save succeeded


@pytest.mark.slow
def test_an_unwritable_mlflow_artifact_folder_fails_before_any_node(kedro_project):
    (kedro_project / "mlartifacts").write_text("a file where MLflow's artifact folder should be")
    with pytest.raises(StorageError, match=r"MLflow artifacts of this run .*mlartifacts.* is not writable"):
        run_kedro(kedro_project, "data_processing", {"data.image_size": 8})
    assert not versions(kedro_project / "data/03_primary/image_splits.pt")  # nothing ran
    assert not (kedro_project / LOCK_FILE).exists()
