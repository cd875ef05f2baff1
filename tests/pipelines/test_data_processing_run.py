"""End to end: a real KedroSession run of data_processing, tracked in a temp SQLite store."""

import json

import mlflow
import pytest

from tests.conftest import latest, run_kedro


@pytest.mark.slow
def test_data_processing_session_logs_to_mlflow(kedro_project):
    run = run_kedro(kedro_project, "data_processing", params={"data.valid_size": 0.25})
    params = run.data.params
    assert params["data.source"] == "digits"
    assert params["data.valid_size"] == "0.25"
    assert params["run.device"] == "auto"
    assert not any(key.startswith(("space.", "warmup.", "ablation.")) for key in params)  # sections it did not use
    assert run.data.tags["pipeline"] == "data_processing"
    assert run.data.tags["kedro_env"] == "local"
    assert run.data.tags["mlflow.runName"] == "data_processing|local|seed=0|data.valid_size=0.25"
    assert run.data.tags["runner"] == "SequentialRunner"
    experiment = mlflow.tracking.MlflowClient().get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # UI: model training view
    assert run.data.tags["command"]  # the test process's command line here
    # the MLflow run names the version its files were saved under
    version = run.data.tags["kedro_save_version"]
    assert latest(kedro_project / "data/03_primary/image_splits.pt").parent.name == version
    assert "git_commit" in run.data.tags
    summary = json.loads(latest(kedro_project / "data/08_reporting/dataset_summary.json").read_text())
    assert summary["valid"] == round(0.25 * (1797 - 359))
    assert latest(kedro_project / "data/03_primary/image_splits.pt").exists()
