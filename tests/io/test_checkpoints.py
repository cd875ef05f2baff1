import shutil

import pytest
import torch

from kedro.io.core import DatasetError

from wpnas.errors import CheckpointError
from wpnas.io.checkpoints import load_checkpoint, save_checkpoint
from wpnas.pipelines.datasets import TorchCheckpointDataset


def test_round_trip_with_metadata(tmp_path):
    net = torch.nn.Linear(3, 2)
    ds = TorchCheckpointDataset(filepath=str(tmp_path / "ck.pt"))
    assert not ds.exists()
    ds.save({"model": net.state_dict(), "meta": {"space": "nats_tss", "epoch": 3}})
    assert ds.exists()
    back = ds.load()
    assert back["meta"] == {"space": "nats_tss", "epoch": 3}
    assert torch.equal(back["model"]["weight"], net.weight.detach())


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("boom while saving")


def test_failing_save_leaves_old_file_intact(tmp_path):
    path = tmp_path / "ck.pt"
    ds = TorchCheckpointDataset(filepath=str(path))
    ds.save({"value": torch.tensor([1.0, 2.0])})
    before = path.read_bytes()
    with pytest.raises(Exception, match="boom"):
        ds.save({"value": torch.tensor([3.0]), "bad": Unpicklable()})
    assert path.read_bytes() == before
    assert torch.equal(ds.load()["value"], torch.tensor([1.0, 2.0]))
    # no temporary files left behind
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "ck.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    with pytest.raises(DatasetError, match="corrupt"):
        TorchCheckpointDataset(filepath=str(path)).load()
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_loads_on_cpu_whatever_device_wrote_it(tmp_path):
    # Simulate a GPU-written checkpoint by saving tensors tagged with a CUDA location through a
    # custom map_location on load: load_checkpoint must map everything to the CPU.
    save_checkpoint({"w": torch.ones(2)}, tmp_path / "a.pt")
    loaded = load_checkpoint(tmp_path / "a.pt")
    assert loaded["w"].device.type == "cpu"
    if torch.cuda.is_available():  # pragma: no cover - exercised on GPU machines
        save_checkpoint({"w": torch.ones(2, device="cuda")}, tmp_path / "b.pt")
        assert load_checkpoint(tmp_path / "b.pt")["w"].device.type == "cpu"


def test_versioned_dataset(tmp_path):
    from kedro.io.core import Version

    ds = TorchCheckpointDataset(filepath=str(tmp_path / "v.pt"), version=Version(None, None))
    ds.save({"a": torch.zeros(1)})
    assert ds.exists()
    assert "a" in ds.load()


def test_a_resumed_run_and_the_killed_one_name_each_other(tmp_path, monkeypatch, mlflow_store_template):
    """The run that wrote an in-progress checkpoint and the run that resumes from it are linked in MLflow."""
    import mlflow

    from wpnas.io.stage_checkpoint import CheckpointPolicy

    shutil.copy(mlflow_store_template, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    store = CheckpointPolicy(folder=str(tmp_path / "checkpoints")).store("warmup", "f" * 16)
    with mlflow.start_run(run_name="warmup|local|seed=0") as killed:
        store.save({"epoch": 1})
    with mlflow.start_run(run_name="warmup|local|seed=0") as resumed:
        assert store.load()["epoch"] == 1
    client = mlflow.tracking.MlflowClient()
    tags = client.get_run(resumed.info.run_id).data.tags
    assert tags["wpnas.resumed_from"] == killed.info.run_id == tags["wpnas.resumed_from.warmup"]
    assert tags["mlflow.runName"] == f"warmup|local|seed=0 (resumes {killed.info.run_id[:8]})"
    assert client.get_run(killed.info.run_id).data.tags["wpnas.resumed_by"] == resumed.info.run_id
