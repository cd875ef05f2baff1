"""Versioned reports: kedro-mlflow's artifact dataset inside Kedro's catalog versioning.

(That each save is also logged to the MLflow run is checked end to end in test_search_run.py.)"""

from kedro.io import DataCatalog

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
