"""Versioned reports: kedro-mlflow's artifact dataset inside Kedro's catalog versioning.

(That each save is also logged to the MLflow run is checked end to end in test_search_run.py.)"""

import errno
import json

import pandas as pd
import pytest
from kedro.io import DataCatalog
from kedro.io.core import DatasetError

V1, V2, V3 = "2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z", "2026-01-03T00.00.00.000Z"


def test_versioned_report_is_kept_per_run_and_loadable_by_version(tmp_path):
    path = tmp_path / "report.json"
    config = {"report": {"type": "wpnas.pipelines.datasets.VersionedArtifactDataset", "versioned": True,
                         "dataset": {"type": "json.JSONDataset", "filepath": str(path)}}}
    for version, value in ((V1, 1), (V2, 2)):
        catalog = DataCatalog.from_config(config, save_version=version)  # one catalog per run
        dataset = catalog["report"]
        assert type(dataset).__name__ == "MlflowJSONDataset"  # kedro-mlflow's, so its hooks see it
        dataset._logging_activated = False  # no MLflow run here
        catalog.save("report", {"value": value})
    assert sorted(p.name for p in path.iterdir()) == [V1, V2]  # the first run's file is still there
    assert DataCatalog.from_config(config, save_version=V3).load("report") == {"value": 2}  # newest
    older = DataCatalog.from_config(config, load_versions={"report": V1}, save_version=V3)
    assert older.load("report") == {"value": 1}


def _enospc(written):
    raise OSError(errno.ENOSPC, f"No space left on device ({written} bytes written)")


def _dump_then_full(obj, handle, **kwargs):
    """json.dump on a disk that fills up after 40 characters."""
    handle.write(json.dumps(obj)[:40])
    _enospc(40)


def _csv_then_full(frame, path_or_buf=None, **kwargs):
    """DataFrame.to_csv on a disk that fills up after the header and one row."""
    path_or_buf.write(frame.head(1).to_string()[:20])
    _enospc(20)


@pytest.mark.parametrize(("kind", "name", "good", "target", "fake"), [
    ("json.JSONDataset", "final_genotype.json", {"arch": "a"}, (json, "dump"), _dump_then_full),
    ("pandas.CSVDataset", "pairs.csv", pd.DataFrame({"x": [1, 2]}), (pd.DataFrame, "to_csv"), _csv_then_full),
])
def test_a_full_disk_mid_write_leaves_no_new_version(tmp_path, monkeypatch, kind, name, good, target, fake):
    # Before: the ENOSPC left a truncated file as the newest version, and the next stage crashed
    # reading it ("Expecting value: line 1 column 1").
    path = tmp_path / name
    config = {"report": {"type": "wpnas.pipelines.datasets.VersionedArtifactDataset", "versioned": True,
                         "dataset": {"type": kind, "filepath": str(path)}}}
    catalog = DataCatalog.from_config(config, save_version=V1)
    catalog["report"]._logging_activated = False
    catalog.save("report", good)
    monkeypatch.setattr(*target, fake)
    catalog = DataCatalog.from_config(config, save_version=V2)
    catalog["report"]._logging_activated = False
    with pytest.raises(DatasetError, match=r"no space left on the device writing artifact .*\.[a-z]+'"):
        catalog.save("report", good)
    monkeypatch.undo()
    assert sorted(p.name for p in path.iterdir()) == [V1]  # no new (truncated) version, no temporary file
    assert sorted(p.name for p in (path / V1).iterdir()) == [name]
    loaded = DataCatalog.from_config(config, save_version=V3).load("report")
    if isinstance(good, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded, good)
    else:
        assert loaded == good


def test_every_catalog_entry_writes_atomically(kedro_project):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from wpnas.pipelines.datasets import AtomicLocalFileSystem, TorchCheckpointDataset, TorchScriptDataset

    bootstrap_project(kedro_project)
    with KedroSession.create(project_path=kedro_project) as session:
        catalog = session.load_context().catalog
        for name in catalog.keys():
            if name == "parameters" or name.startswith("params:"):
                continue
            dataset = catalog.get(name)
            assert isinstance(dataset, (TorchCheckpointDataset, TorchScriptDataset)) or isinstance(
                getattr(dataset, "_fs", None), AtomicLocalFileSystem), name
