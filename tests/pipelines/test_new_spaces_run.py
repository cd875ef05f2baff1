"""End to end for the DARTS and MobileNet spaces: `kedro run` (steps 1-5 and the report) on the
embedded digits, through the same stages as NATS, with no space-specific code in them."""

import json

import pandas as pd
import pytest

from tests.conftest import latest, run_kedro
from tests.pipelines.test_evaluation_run import EVAL_TINY
from tests.pipelines.test_search_run import TINY
from wpnas.io.checkpoints import load_checkpoint
from wpnas.spaces import get_space

SPACES = {
    # 8x8 digits: DARTS halves twice (2x2 at the end), MobileNet's CIFAR layout three times (1x1)
    "darts": ({"C": 4, "layers": 3}, {"evaluation.network": {"C": 6, "layers": 4, "auxiliary": False}}),
    "mobilenet": ({"width_mult": 0.25}, {"evaluation.network": {"dropout": 0.1}}),
}


@pytest.mark.slow
@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_new_space_end_to_end(kedro_project, space_name):
    options, evaluation = SPACES[space_name]
    params = {**TINY, **EVAL_TINY, **evaluation, **{
        "space.name": space_name, f"space.options.{space_name}": options,
        "search.wpnas.hypernet.mode": "trained",  # weakly weight sharing over the space's convolutions
        "ground_truth.num_archs": 10, "search.steps_per_epoch": 2, "evaluation.epochs": 1,
    }}
    run = run_kedro(kedro_project, "__default__", params=params)
    space = get_space(space_name, **options)

    genotype = json.loads(latest(kedro_project / "data/07_model_output/final_genotype.json").read_text())
    assert genotype["space"] == space_name
    arch = space.from_string(genotype["arch"])
    assert list(arch) == genotype["choices"]
    assert genotype["flops_m"] == pytest.approx(space.cost(arch, (1, 8, 8), 10).flops_m)

    pairs = pd.read_csv(latest(kedro_project / "data/05_model_input/arch_accuracy_pairs.csv"))
    assert len(pairs) == 10 and all(space.from_string(a) for a in pairs["arch"])
    searched = load_checkpoint(latest(kedro_project / "data/06_models/searched_supernet.pt"))
    assert searched["supernet"]["space"] == space_name
    offsets = searched["hypernet"]["state_dict"]["proj.weight"]
    assert offsets.shape[0] == space.offset_kernel ** 2 and offsets.abs().sum() > 0  # the HyperNet trained

    metrics = json.loads(latest(kedro_project / "data/08_reporting/evaluation_metrics.json").read_text())
    network = evaluation["evaluation.network"]
    expected = space.evaluation_cost(arch, (1, 8, 8), 10, network)
    assert metrics["params_m"] == pytest.approx(expected.params_m) and metrics["arch"] == genotype["arch"]
    if space_name == "darts":  # the evaluation network is not the searched one: its cost differs
        assert expected.params_m != pytest.approx(space.cost(arch, (1, 8, 8), 10).params_m)
    summary = latest(kedro_project / "data/08_reporting/summary.md").read_text()
    assert genotype["arch"] in summary
    assert run.data.tags["final_arch"] == genotype["arch"]
    assert "evaluation/test_accuracy" in run.data.metrics
