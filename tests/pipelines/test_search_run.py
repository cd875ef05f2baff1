"""End to end: `search` (paper steps 1-4) through a real KedroSession on a tiny configuration."""

import json

import mlflow
import pandas as pd
import pytest

from tests.conftest import latest, run_kedro, versions
from wpnas.errors import DataError
from wpnas.io.checkpoints import load_checkpoint
from wpnas.spaces import get_space

TINY = {
    "data.image_size": 8,
    "data.train_limit": 300,
    "warmup.epochs": 1,
    "warmup.batch_size": 32,
    "warmup.probe_archs": 2,
    "warmup.probe_every": 1,
    "warmup.probe_valid_limit": 64,
    "warmup.calib_batches": 1,
    "ground_truth.num_archs": 12,
    "ground_truth.batch_size": 32,
    "ground_truth.calib_batches": 1,
    "predictor.valid_size": 4,
    "predictor.model.support_size": 4,
    "predictor.model.epochs": 3,
    "predictor.model.ensemble": 1,
    "search.epochs": 2,
    "search.steps_per_epoch": 3,
    "search.batch_size": 32,
    "search.valid_batch_size": 64,
    "search.eval_every": 1,
    "search.eval_valid_limit": 64,
    "search.calib_batches": 1,
    "landmark_phase.epochs": 1,
    "search.selection.search_top_k": 3,
    "search.selection.predictor_top_k": 3,
    "search.selection.refine_budget": 4,
    "search.selection.refine_per_step": 2,
}

#: A stage run that uses no ground-truth pairs: no landmark phase, no predictor, no selection.
NO_PAIRS = {"search.wpnas.reward.b1": 0.0, "landmark_phase.enabled": False, "search.selection.enabled": False}

ARTIFACTS = [
    "data/03_primary/image_splits.pt",
    "data/06_models/warmed_supernet.pt",
    "data/05_model_input/arch_accuracy_pairs.csv",
    "data/06_models/predictor_weights.pt",
    "data/08_reporting/predictor_metrics.json",
    "data/06_models/searched_supernet.pt",
    "data/07_model_output/alpha_trajectory.csv",
    "data/08_reporting/alpha_heatmap.png",
    "data/06_models/landmark_supernet.pt",
    "data/07_model_output/search_genotype.json",
    "data/07_model_output/selection_candidates.csv",
    "data/07_model_output/final_genotype.json",
]


@pytest.mark.slow
@pytest.mark.parametrize("space_name", ["nats_tss", "nats_sss"])
def test_search_pipeline_end_to_end(kedro_project, space_name):
    params = dict(TINY, **{"space.name": space_name})
    if space_name == "nats_tss":
        params["space.options.nats_tss.C"] = 4
    run = run_kedro(kedro_project, "search", params=params)
    first = run.data.tags["kedro_save_version"]
    for path in ARTIFACTS:  # versioned: <path>/<the run's save version>/<file name>
        assert latest(kedro_project / path) == kedro_project / path / first / path.rsplit("/", 1)[1], path

    space = get_space(space_name, **({"C": 4, "N": 1} if space_name == "nats_tss" else {"channels": [8, 16, 24, 32]}))
    genotype = json.loads(latest(kedro_project / "data/07_model_output/final_genotype.json").read_text())
    assert genotype["space"] == space_name
    arch = space.from_string(genotype["arch"])
    assert list(arch) == genotype["choices"]
    assert genotype["flops_m"] == pytest.approx(space.cost(arch, (1, 8, 8), 10).flops_m)

    # the final selection: the best candidate by the ground-truth method, never below the best pair
    candidates = pd.read_csv(latest(kedro_project / "data/07_model_output/selection_candidates.csv"))
    chosen = candidates[candidates["chosen"]]
    assert len(chosen) == 1 and chosen["arch"].iloc[0] == genotype["arch"]
    assert chosen["score"].iloc[0] == candidates["score"].max() == genotype["selection"]["score"]
    own = json.loads(latest(kedro_project / "data/07_model_output/search_genotype.json").read_text())
    assert own["arch"] in set(candidates["arch"]) and genotype["search_choice"]["arch"] == own["arch"]
    assert genotype["selection"]["new_evaluations"] == int(candidates["new"].sum()) <= 3 + 3 + 4

    pairs = pd.read_csv(latest(kedro_project / "data/05_model_input/arch_accuracy_pairs.csv"))
    assert genotype["selection"]["score"] >= pairs["accuracy"].max()
    assert len(pairs) == 12 and set(pairs.columns) >= {"arch", "accuracy", "flops_m", "params_m", "source", "seconds"}

    trajectory = pd.read_csv(latest(kedro_project / "data/07_model_output/alpha_trajectory.csv"))
    assert sorted(trajectory["epoch"].unique()) == [0, 1, 2]
    sums = trajectory.groupby(["epoch", "decision"])["probability"].sum()
    assert sums.between(0.999, 1.001).all()

    searched = load_checkpoint(latest(kedro_project / "data/06_models/searched_supernet.pt"))
    assert searched["stage"] == "search" and searched["supernet"]["space"] == space_name
    warmed = load_checkpoint(latest(kedro_project / "data/06_models/warmed_supernet.pt"))
    assert warmed["epoch"] == 1 and "trainer" in warmed and "rng" in warmed

    # MLflow: one run with parameters, per-stage metrics and the important artifacts
    assert run.data.params["space.name"] == space_name
    assert run.data.params["search.wpnas.reward.b1"] == "0.01"
    assert run.data.tags["pipeline"] == "search"
    assert run.data.tags["mlflow.runName"].startswith("search|local|seed=0|data.image_size=8|data.train_limit=300|")
    assert run.data.tags["runner"] == "SequentialRunner"
    for key in ("warmup/train_loss", "ground_truth/accuracy_mean", "ground_truth/accuracy_best",
                "ground_truth/count", "ground_truth/arch_accuracy", "search/entropy"):
        assert key in run.data.metrics, key
    assert "ground_truth/accuracy" not in run.data.metrics  # no per-architecture series posing as a summary
    assert run.data.metrics["ground_truth/count"] == 12
    assert run.data.metrics["ground_truth/accuracy_best"] == pytest.approx(pairs["accuracy"].max())
    client = mlflow.tracking.MlflowClient()
    logged = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"final_genotype.json", "alpha_trajectory.csv", "alpha_heatmap.png", "predictor_metrics.json",
            "predictor_validation.csv"} <= logged

    if space_name != "nats_tss":
        return
    # Runs do not overwrite each other: a second WarmUp adds a version, a later stage loads the
    # newest by default and a named one with --load-versions.
    second = run_kedro(kedro_project, "warmup", params=dict(params, **{"warmup.epochs": 2}))
    second_version = second.data.tags["kedro_save_version"]
    warmed_path = kedro_project / "data/06_models/warmed_supernet.pt"
    assert versions(warmed_path) == [first, second_version]
    assert load_checkpoint(warmed_path / first / "warmed_supernet.pt")["epoch"] == 1  # the first is kept
    # the pairs and the predictor were fine-tuned from the first WarmUp: the search refuses them
    with pytest.raises(DataError, match="fine-tuned from the warmed SuperNet with fingerprint .* ground_truth"):
        run_kedro(kedro_project, "wpnas_search", params=params)
    run_kedro(kedro_project, "wpnas_search", params=dict(params, **NO_PAIRS))  # no pairs used
    searched_path = kedro_project / "data/06_models/searched_supernet.pt"
    assert load_checkpoint(latest(searched_path))["warmed_from"]["epoch"] == 2  # the newest WarmUp
    third = run_kedro(kedro_project, "wpnas_search", params=params, load_versions={"warmed_supernet": first})
    assert third.data.tags["load_versions"] == str({"warmed_supernet": first})
    phased = load_checkpoint(latest(kedro_project / "data/06_models/landmark_supernet.pt"))
    assert phased["landmark_phase"]["warmed_epochs"] == 1  # the landmark phase continued the one asked for
    assert load_checkpoint(latest(searched_path))["warmed_from"]["epoch"] == 2  # 1 WarmUp epoch + 1 landmark epoch
    assert len(versions(searched_path)) == 3
    # every stage finished, so no in-progress checkpoint is left
    assert not list((kedro_project / "data/09_checkpoints").glob("*.pt"))

    # Stale inputs (issue 12): the splits remade at another image size, then the search alone.
    # The SuperNet was warmed on 8x8 images: the search stops and names both fingerprints.
    # (With data.image_size still 8 the search refuses the 6x6 splits themselves, issue 23.)
    resized = dict(params, **{"data.image_size": 6})
    run_kedro(kedro_project, "data_processing", params=resized)
    with pytest.raises(DataError, match=r"data.image_size = 8, the stored splits hold 6x6 images"):
        run_kedro(kedro_project, "wpnas_search", params=dict(params, **NO_PAIRS))
    with pytest.raises(DataError, match=r"input_shape: \[1,6,6\] != \[1,8,8\]") as err:
        run_kedro(kedro_project, "wpnas_search", params=dict(resized, **NO_PAIRS))
    recorded = load_checkpoint(latest(warmed_path))["inputs"]["image_splits"]["fingerprint"]
    assert recorded in str(err.value) and len(versions(searched_path)) == 3


@pytest.mark.slow
def test_bad_parameters_fail_before_any_node_runs(kedro_project):
    from wpnas.errors import ConfigError, DataError

    with pytest.raises(ConfigError, match="unknown search space 'nats_xyz'"):
        run_kedro(kedro_project, "search", params={"space.name": "nats_xyz"})
    assert not versions(kedro_project / "data/03_primary/image_splits.pt")
    with pytest.raises(ConfigError, match="ground_truth.num_archs"):
        run_kedro(kedro_project, "search", params={"ground_truth.num_archs": 5})
    with pytest.raises(DataError, match="does not exist"):
        run_kedro(kedro_project, "search", params={"data.source": "image_folder", "data.root": "/no/such/folder"})
    with pytest.raises(ConfigError, match="not a valid device"):
        run_kedro(kedro_project, "search", params={"run.device": "gpu"})
    assert not versions(kedro_project / "data/03_primary/image_splits.pt")


@pytest.mark.slow
def test_predictor_benchmark_pipeline_writes_table2(kedro_project, shared_data):
    tables = [
        {"space": {"name": "nats_tss"}, "benchmark": {"kind": "csv", "path": str(shared_data / "nb201" / "nb201_cifar10.csv"),
                                                   "metric": "cifar10_valid_200ep"}},
    ]
    run = run_kedro(kedro_project, "predictor_benchmark", params={
        "predictor_benchmark.tables": tables, "predictor_benchmark.seeds": 2,
        "predictor_benchmark.encoders": ["mlp"], "predictor_benchmark.overrides": {"epochs": 2},
    })
    summary = pd.read_csv(latest(kedro_project / "data/08_reporting/predictor_table2.csv"))
    assert list(summary["row"]) == ["MLP", "few-shot MLP", "baseline: MLP one-hot + ranking"]
    assert (summary["seeds"] == 2).all()
    markdown = latest(kedro_project / "data/08_reporting/predictor_table2.md").read_text()
    assert "few-shot MLP" in markdown and "0.561" in markdown  # the paper's value sits next to ours
    assert any(k.startswith("table2/nats_tss/few-shot MLP/") for k in run.data.metrics)


@pytest.mark.slow
def test_random_search_method_end_to_end(kedro_project):
    """`kedro run --pipelines=search --params search.method=random_search`: the method added as one
    file runs through the same pipeline; its choice is the best architecture it scored."""
    import statistics

    params = dict(TINY, **{"space.options.nats_tss.C": 4, "search.method": "random_search",
                           "search.random_search.num_archs": 6, "search.random_search.archs_per_epoch": 4})
    run = run_kedro(kedro_project, "search", params=params)
    own = json.loads(latest(kedro_project / "data/07_model_output/search_genotype.json").read_text())
    searched = load_checkpoint(latest(kedro_project / "data/06_models/searched_supernet.pt"))
    scores = {get_space("nats_tss", C=4, N=1).to_string(arch): score
              for arch, score in searched["random_search"]["scores"]}
    assert own["method"] == searched["method"] == "random_search" and len(scores) == 6 and own["epochs"] == 2
    best = max(scores.values())
    assert own["supernet_valid_acc"] == scores[own["arch"]] == best >= statistics.median(scores.values())
    assert own["top_candidates"][0] == own["arch"] and len(own["top_candidates"]) == 3
    assert pd.read_csv(latest(kedro_project / "data/07_model_output/alpha_trajectory.csv")).empty  # no alpha
    final = json.loads(latest(kedro_project / "data/07_model_output/final_genotype.json").read_text())
    assert final["search_choice"]["arch"] == own["arch"] and run.data.tags["search_arch"] == own["arch"]
