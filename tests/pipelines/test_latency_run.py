"""End to end: the `latency` pipeline at toy size, and a search that prices and bounds latency with its table."""

import json

import mlflow
import pytest

from tests.conftest import latest, run_kedro, versions
from tests.pipelines.test_search_run import TINY
from wpnas.errors import ConfigError, DataError
from wpnas.latency import LatencyTable
from wpnas.spaces import get_space

#: The toy table: digits at 8x8, NATS-TSS C=8 N=1 (conf/base), few timed calls.
TOY_LATENCY = {"data.image_size": 8, "latency.warmup": 0, "latency.repeats": 2, "latency.calibration_archs": 2}


def test_latency_pipeline_runs_at_toy_size_and_bad_latency_input_fails_before_any_node(kedro_project):
    run = run_kedro(kedro_project, "latency", params=TOY_LATENCY)
    path = latest(kedro_project / "data/06_models/latency_table.json")
    assert path.parent.name == run.data.tags["kedro_save_version"]
    data = json.loads(path.read_text())
    fields = data["fingerprint"]["fields"]
    assert fields["space"] == "nats_tss" and fields["input_shape"] == [1, 8, 8] and fields["batch_size"] == 1
    assert fields["threads"] == 1 and fields["device"] == "cpu" and fields["torch"]
    space = get_space("nats_tss", {"C": 8, "N": 1})
    table = LatencyTable(data, space)
    assert table.latency(space.validate([1] * 6)) > table.lower_bound() > 0
    assert run.data.metrics["latency/units"] == len(data["entries"]) > 0
    assert run.data.tags["latency_fingerprint"] == data["fingerprint"]["fingerprint"]
    client = mlflow.tracking.MlflowClient()
    logged = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert "latency_table.json" in logged, logged  # the table is an MLflow artifact of the run

    # a search whose bound is below the fastest architecture, or whose table was made for another
    # batch size, fails in the validation hook: no node runs, nothing is written
    with pytest.raises(ConfigError, match="below the fastest architecture"):
        run_kedro(kedro_project, "search", params={**TOY_LATENCY, "search.method": "spos_evolution",
                                                   "search.max_latency_ms": table.lower_bound() / 2})
    with pytest.raises(DataError, match="batch_size: 2 != 1"):
        run_kedro(kedro_project, "search", params={**TOY_LATENCY, "latency.batch_size": 2,
                                                   "search.wpnas.reward.cost": "latency"})
    with pytest.raises(ConfigError, match="reward.cost: 'energy' is not one of"):
        run_kedro(kedro_project, "search", params={**TOY_LATENCY, "search.wpnas.reward.cost": "energy"})
    assert not versions(kedro_project / "data/03_primary/image_splits.pt")


@pytest.mark.slow
def test_latency_bounded_spos_search_reports_the_measured_latency(kedro_project):
    run_kedro(kedro_project, "latency", params=TOY_LATENCY)
    space = get_space("nats_tss", {"C": 8, "N": 1})
    table = LatencyTable(json.loads(latest(kedro_project / "data/06_models/latency_table.json").read_text()), space)
    fast = sorted(table.latency(a) for a in space.sample_unique(__import__("numpy").random.default_rng(0), 50))
    bound = fast[10]  # about the fastest fifth of the space
    params = {**TINY, **TOY_LATENCY, "search.method": "spos_evolution", "search.max_latency_ms": bound,
              "search.evolution.population": 6, "search.evolution.generations": 2, "search.evolution.top_k": 3,
              "search.evolution.num_crossover": 3, "search.evolution.num_mutation": 3}
    run = run_kedro(kedro_project, "search", params=params)
    genotype = json.loads(latest(kedro_project / "data/07_model_output/final_genotype.json").read_text())
    arch = space.parse(genotype["arch"])
    assert table.latency(arch) <= bound
    assert genotype["latency_table_ms"] == pytest.approx(table.latency(arch))
    assert genotype["latency_ms"] > 0 and genotype["latency_device"] == table.fingerprint["fields"]["device_name"]
    assert genotype["max_latency_ms"] == bound
    assert run.data.metrics["final/latency_ms"] == pytest.approx(genotype["latency_ms"])
    searched = json.loads(latest(kedro_project / "data/07_model_output/search_genotype.json").read_text())
    assert table.latency(space.parse(searched["arch"])) <= bound  # evolution's own choice is within it too
