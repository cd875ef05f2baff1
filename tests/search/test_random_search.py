"""Random search over the SuperNet (search method ``random_search``): a synthetic fitness, the
runner, resume, the FLOPs bound and its settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wpnas.config import from_dict
from wpnas.errors import ConfigError
from wpnas.search import SearchConfig, SearchRunner, available_methods, run_search
from wpnas.search.random_search import RandomSearch, RandomSearchConfig
from wpnas.spaces import get_space

DEVICE = torch.device("cpu")
RANDOM = {"num_archs": 7, "archs_per_epoch": 3}


def synthetic_fitness(arch) -> float:
    """A fitness with structure: later choices score more, the first decision most."""
    return float(sum((i + 1) * c for i, c in enumerate(reversed(arch))))


def test_finds_a_better_than_median_architecture_of_a_synthetic_fitness():
    space = get_space("nats_tss", C=4, N=1)
    calls = []

    def fitness(archs):
        calls.append(len(archs))
        return [synthetic_fitness(a) for a in archs]

    search = RandomSearch(space, fitness, RandomSearchConfig(num_archs=40, archs_per_epoch=16), seed=3)
    while not search.done:
        search.step()
    median = float(np.median([synthetic_fitness(a) for a in space.enumerate()]))
    arch, score = search.best()
    assert score == synthetic_fitness(arch) == max(search.scores.values()) > median
    assert calls == [16, 16, 8] and len(set(search.scores)) == 40  # distinct, every one scored once
    again = RandomSearch(space, fitness, RandomSearchConfig(num_archs=40, archs_per_epoch=16), seed=3)
    assert again.draw == search.draw  # seeded


def test_flops_bound_and_space_size():
    space = get_space("nats_tss", C=4, N=1)
    cost = lambda a: float(sum(a))  # noqa: E731
    bounded = RandomSearch(space, lambda archs: [0.0] * len(archs), RandomSearchConfig(num_archs=10, max_flops_m=6),
                           cost=cost)
    assert all(cost(a) <= 6 for a in bounded.draw) and len(bounded.draw) == 10
    with pytest.raises(ConfigError, match="random_search.max_flops_m: no architecture"):
        RandomSearch(space, lambda archs: [], RandomSearchConfig(max_flops_m=1e-9, max_tries=20), cost=cost)
    with pytest.raises(ConfigError, match="random_search.num_archs: 20000 is more than the 15625"):
        RandomSearch(space, lambda archs: [], RandomSearchConfig(num_archs=20000))


def test_an_unknown_setting_is_refused_naming_the_key():
    assert "random_search" in available_methods()
    with pytest.raises(ConfigError, match=r"search.random_search: unknown setting\(s\) \['num_arch'\] "
                                          r"\(did you mean 'num_archs'\?\)"):
        from_dict(SearchConfig, {"method": "random_search", "random_search": {"num_arch": 5}}, where="search")
    with pytest.raises(ConfigError, match="search.random_search.archs_per_epoch: 0"):
        from_dict(SearchConfig, {"random_search": {"archs_per_epoch": 0}}, where="search")
    cfg = from_dict(SearchConfig, {"method": "random_search", "random_search": RANDOM}, where="search")
    assert cfg.settings == RandomSearchConfig(**RANDOM) and not cfg.needs.pairs


def test_random_search_through_the_runner_resumes_exactly(kit):
    space, warmed = kit.warmed("nats_tss")
    cfg = kit.cfg(method="random_search", random_search=RANDOM)
    runner = SearchRunner(space, kit.digits, warmed, cfg, DEVICE, seed=1)
    result = runner.run()
    scores = runner.method.search.scores
    genotype = result.final_genotype
    assert [h["epoch"] for h in result.history] == [1, 2, 3] and len(scores) == 7
    assert genotype["method"] == "random_search" and scores[tuple(genotype["choices"])] == max(scores.values())
    # the score is the runner's own inherited-weight evaluation
    assert runner.evaluate(tuple(genotype["choices"]))["acc"] == pytest.approx(genotype["supernet_valid_acc"])
    assert genotype["top_candidates"][0] == genotype["arch"]
    half = SearchRunner(space, kit.digits, warmed, cfg, DEVICE, seed=1).run(stop_epoch=1)
    resumed = run_search(space, kit.digits, warmed, cfg, DEVICE, seed=1, resume=half.checkpoint)
    assert resumed.final_genotype == genotype and resumed.trajectory.equals(result.trajectory)
