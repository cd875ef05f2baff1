"""End to end: a real KedroSession run of data_processing, tracked in a temp SQLite store."""

import json

import pytest

from tests.conftest import run_kedro


@pytest.mark.slow
def test_data_processing_session_logs_to_mlflow(kedro_project):
    run = run_kedro(kedro_project, "data_processing", params={"data.valid_size": 0.25})
    params = run.data.params
    assert params["data.source"] == "digits"
    assert params["data.valid_size"] == "0.25"
    assert params["run.device"] == "auto"
    assert params["space.name"] == "nats_tss"
    assert run.data.tags["pipeline"] == "data_processing"
    assert run.data.tags["kedro_env"] == "local"
    assert "git_commit" in run.data.tags
    summary = json.loads((kedro_project / "data/08_reporting/dataset_summary.json").read_text())
    assert summary["valid"] == round(0.25 * (1797 - 359))
    assert (kedro_project / "data/03_primary/image_splits.pt").exists()
    assert (kedro_project / "mlflow.db").exists()
