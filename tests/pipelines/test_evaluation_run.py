"""End to end: `search`, then `evaluation` (paper step 5) through real KedroSessions."""

import json

import mlflow
import pytest
import torch

from tests.conftest import latest, run_kedro, versions
from tests.pipelines.test_search_run import TINY
from wpnas.errors import ConfigError, DataError
from wpnas.io.checkpoints import load_checkpoint
from wpnas.io.torchscript import load_torchscript
from wpnas.train.scratch import load_final_model

EVAL_TINY = {
    "evaluation.epochs": 2,
    "evaluation.batch_size": 32,
    "evaluation.valid_every": 1,
}


@pytest.mark.slow
def test_evaluation_pipeline_after_search(kedro_project, shared_data):
    params = dict(TINY, **{"space.options.nats_tss.C": 4})
    run_kedro(kedro_project, "search", params=params)
    genotype_path = latest(kedro_project / "data/07_model_output/final_genotype.json")
    genotype = json.loads(genotype_path.read_text())

    table = str(shared_data / "nb201" / "nb201_cifar10.csv")
    run = run_kedro(kedro_project, "evaluation", params=dict(params, **EVAL_TINY, **{
        "evaluation.benchmark": {"kind": "csv", "path": table, "metric": "cifar10_valid_200ep"},
        "evaluation.rank_metric": "cifar10_test_200ep",
    }))
    metrics = json.loads(latest(kedro_project / "data/08_reporting/evaluation_metrics.json").read_text())
    assert metrics["arch"] == genotype["arch"] and metrics["space"] == "nats_tss" and metrics["epochs"] == 2
    assert 0 <= metrics["test_accuracy"] <= 100 and 0 <= metrics["valid_accuracy"] <= 100
    assert metrics["benchmark_metric"] == "cifar10_test_200ep" and metrics["benchmark_size"] == 15625
    assert 1 <= metrics["benchmark_rank"] <= 15625

    checkpoint = load_checkpoint(latest(kedro_project / "data/06_models/final_model.pt"))
    assert checkpoint["kind"] == "final_model" and checkpoint["genotype"]["arch"] == genotype["arch"]
    net = load_final_model(checkpoint)
    export = load_torchscript(latest(kedro_project / "data/06_models/final_model_script.pt"))
    assert export.metadata["arch"] == genotype["arch"] and export.metadata["input_shape"] == [1, 8, 8]
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(export.module(x), net(x), atol=1e-5)

    assert run.data.tags["pipeline"] == "evaluation"
    for key in ("evaluation/train_loss", "evaluation/train_acc", "evaluation/valid_acc",
                "evaluation/test_accuracy", "evaluation/benchmark_rank"):
        assert key in run.data.metrics, key
    history = mlflow.tracking.MlflowClient().get_metric_history(run.info.run_id, "evaluation/train_loss")
    assert len(history) == 2
    logged = {f.path for f in mlflow.tracking.MlflowClient().list_artifacts(run.info.run_id)}
    assert "evaluation_metrics.json" in logged

    # Bad input fails before training and leaves the good artifacts alone
    model = kedro_project / "data/06_models/final_model.pt"
    before = versions(model), latest(model).stat().st_mtime_ns
    with pytest.raises(ConfigError, match="searched in nats_tss with options"):
        run_kedro(kedro_project, "evaluation", params=dict(params, **EVAL_TINY, **{"space.options.nats_tss.C": 8}))
    with pytest.raises(ConfigError, match="from space 'nats_tss' but space.name is 'nats_sss'"):
        run_kedro(kedro_project, "evaluation", params=dict(params, **EVAL_TINY, **{"space.name": "nats_sss"}))
    with pytest.raises(DataError, match="evaluation.benchmark.path"):
        run_kedro(kedro_project, "evaluation", params=dict(params, **EVAL_TINY, **{
            "evaluation.benchmark": {"kind": "csv", "path": "/no/such.csv"}}))
    genotype_path.write_text(json.dumps({k: v for k, v in genotype.items() if k != "choices"}))
    with pytest.raises(DataError, match="missing key"):
        run_kedro(kedro_project, "evaluation", params=dict(params, **EVAL_TINY))
    assert (versions(model), latest(model).stat().st_mtime_ns) == before  # no new version, the old one untouched
