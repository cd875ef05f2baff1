"""End to end: `kedro run` (search + evaluation + reporting), then the example notebook on its artifacts."""

import json
import shutil

import mlflow
import mlflow.pytorch
import pytest
import torch

from wpnas.errors import DataError

from tests.conftest import REPO, latest, run_kedro
from tests.pipelines.test_evaluation_run import EVAL_TINY
from tests.pipelines.test_search_run import TINY

FIGURES = ["alpha_lines.png", "predictor_scatter.png", "accuracy_vs_flops.png"]


@pytest.mark.slow
def test_default_run_reports_and_the_notebook_executes(kedro_project):
    params = dict(TINY, **EVAL_TINY, **{"space.options.nats_tss.C": 4})
    run = run_kedro(kedro_project, "__default__", params=params)

    genotype = json.loads(latest(kedro_project / "data/07_model_output/final_genotype.json").read_text())
    summary = latest(kedro_project / "data/08_reporting/summary.md").read_text()
    assert f"`{genotype['arch']}`" in summary and "trained from scratch, test" in summary
    assert "## Sources" in summary and "`alpha_heatmap.png`" in summary
    assert (kedro_project / "data/08_reporting/summary-latest.md").read_text() == summary  # a stable path
    assert f"MLflow run {run.info.run_id}" in summary
    for name in FIGURES:
        data = latest(kedro_project / "data/08_reporting" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, name

    assert run.data.tags["final_arch"] == genotype["arch"]
    assert run.data.tags["mlflow.runName"].startswith("__default__|local|seed=0|")
    assert run.data.metrics["final/flops_m"] == pytest.approx(genotype["flops_m"])
    assert "evaluation/test_accuracy" in run.data.metrics
    # the sections this run used, not the other pipelines' (ablation, predictor_benchmark)
    sections = {key.split(".")[0] for key in run.data.params}
    assert sections == {"run", "data", "space", "warmup", "ground_truth", "predictor", "landmark_phase", "search",
                        "latency", "evaluation", "distributed"}  # distributed: the run's world (DistributedParamsHook)
    logged = {f.path for f in mlflow.tracking.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"summary.md", *FIGURES} <= logged, logged
    # the network trained from scratch is the run's MLflow model, loadable with its flavour
    models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                         filter_string=f"source_run_id = '{run.info.run_id}'", output_format="list")
    assert [m.name for m in models] == ["model"]
    net = mlflow.pytorch.load_model(f"models:/{models[0].model_id}")
    assert tuple(net(torch.zeros(2, *genotype["input_shape"])).shape) == (2, genotype["num_classes"])

    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebooks = kedro_project / "notebooks"
    notebooks.mkdir()
    shutil.copy(REPO / "notebooks" / "wpnas_results.ipynb", notebooks)
    notebook = nbformat.read(notebooks / "wpnas_results.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(notebooks)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert genotype["arch"] in text and "1 runs with a found architecture" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # alpha lines, accuracy vs FLOPs, scatter

    # the mix: a search with another seed, then the report alone. The newest genotype
    # (seed 1) and the newest evaluation (of seed 0's genotype) are refused together
    run_kedro(kedro_project, "search", params=dict(params, **{"run.seed": 1}))
    before = sorted((kedro_project / "data/08_reporting/summary.md").iterdir())
    with pytest.raises(Exception) as refused:
        run_kedro(kedro_project, "reporting", params=params)
    error = refused.value
    while not isinstance(error, DataError) and (error.__cause__ or error.__context__):
        error = error.__cause__ or error.__context__
    assert isinstance(error, DataError) and "the report's inputs come from different runs" in str(error)
    assert "(search seed 1)" in str(error) or "another search" in str(error)
    assert sorted((kedro_project / "data/08_reporting/summary.md").iterdir()) == before  # nothing written
    assert (kedro_project / "data/08_reporting/summary-latest.md").read_text() == summary
