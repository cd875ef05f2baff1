"""The Table 1 ablation end to end through a real KedroSession, on a tiny configuration."""

from __future__ import annotations

import os

import mlflow
import pandas as pd
import pytest

from tests.conftest import latest, run_kedro
from tests.pipelines.test_search_run import TINY
from wpnas.experiments.ablation import REFERENCES, ROWS

ABLATION = {
    **TINY,
    "space.options.nats_tss.C": 4,
    "ground_truth.num_archs": 10,
    "predictor.valid_size": 3,
    "search.epochs": 1,
    "search.steps_per_epoch": 3,
    "search.evolution.population": 4,
    "search.evolution.generations": 2,
    "search.evolution.top_k": 2,
    "search.evolution.num_crossover": 2,
    "search.evolution.num_mutation": 2,
    "ablation.seeds": [0, 1],
    "ablation.ranking.num_archs": 8,
    "ablation.ranking.calib_batches": 1,
    "ablation.ranking.valid_limit": 64,
    "ablation.predictor_archs": 500,
}


@pytest.mark.slow
def test_ablation_pipeline_end_to_end(kedro_project):
    run_kedro(kedro_project, "ablation", params=ABLATION)
    results = pd.read_csv(latest(kedro_project / "data/07_model_output/ablation_results.csv"))
    assert list(results["row"].unique()) == list(ROWS)
    assert all(sorted(seeds) == [0, 1] for seeds in results.groupby("row")["seed"].apply(list))
    assert results["kendall_tau"].between(-1, 1).all() and results["hours"].gt(0).all()
    references = pd.read_csv(latest(kedro_project / "data/07_model_output/ablation_references.csv"))
    assert sorted(references["row"].unique()) == sorted(REFERENCES)
    table = pd.read_csv(latest(kedro_project / "data/08_reporting/table1.csv"))
    assert list(table["row"]) == [*ROWS, *REFERENCES]
    assert table.loc[table["row"] == "spos", "paper_kendall_tau"].item() == pytest.approx(0.614)
    markdown = latest(kedro_project / "data/08_reporting/table1.md").read_text()
    assert "| SPOS + landmark + PS + predictor + WWS |" in markdown and "0.614" in markdown

    # one parent run and one nested run per row, each row's runs carrying its per-seed metrics
    client = mlflow.tracking.MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("wpnas")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 + len(ROWS)
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.tags["pipeline"] == "ablation"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["ablation_row"] for r in children) == sorted(ROWS)
    for child in children:
        assert child.info.status == "FINISHED"
        history = client.get_metric_history(child.info.run_id, "ablation/kendall_tau")
        assert sorted(m.step for m in history) == [0, 1]
    assert "table1/spos/kendall_tau_mean" in parent.data.metrics
