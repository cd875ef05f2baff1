"""The final selection: its pool, the ground-truth scoring, the refinement and bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from wpnas.config import from_dict
from wpnas.errors import ConfigError, DataError
from wpnas.search import SearchConfig
from wpnas.search.selection import (
    SelectionConfig,
    candidate_pool,
    neighbours,
    predictor_top,
    run_selection,
    select_architecture,
    top_k_joint,
)
from wpnas.spaces import get_space
from wpnas.train.ground_truth import GroundTruthConfig


@pytest.fixture(scope="module")
def space():
    return get_space("nats_tss", C=4, N=1)


# A synthetic fitness with a known best: each decision adds its own value (separable), so the
# global optimum is the best choice per decision and a local search can reach it.
WEIGHTS = np.array([[0.0, 1.0, 3.0, 2.0, 0.5],
                    [1.0, 0.0, 0.2, 4.0, 2.0],
                    [0.0, 2.5, 1.0, 0.5, 0.0],
                    [3.0, 0.0, 1.0, 0.0, 2.0],
                    [0.0, 0.0, 0.0, 1.0, 5.0],
                    [2.0, 1.0, 0.0, 0.0, 1.5]])


def fitness(arch) -> float:
    return 50.0 + float(sum(WEIGHTS[i, c] for i, c in enumerate(arch)))


BEST = tuple(int(i) for i in WEIGHTS.argmax(axis=1))


class CountingScorer:
    def __init__(self):
        self.calls: list[tuple] = []

    def __call__(self, archs):
        self.calls.extend(archs)
        return [fitness(a) for a in archs]


def _pairs(space, archs):
    return pd.DataFrame({"arch": [space.to_string(a) for a in archs], "accuracy": [fitness(a) for a in archs]})


def test_top_k_joint_is_exact_against_brute_force():
    rng = np.random.default_rng(0)
    probs = [rng.dirichlet(np.ones(k)) for k in (3, 4, 2, 5)]
    every = sorted(((np.prod([p[c] for p, c in zip(probs, arch)]), arch)
                    for arch in itertools.product(*(range(len(p)) for p in probs))), key=lambda t: -t[0])
    got = top_k_joint(probs, 7)
    assert [a for a, _ in got] == [a for _, a in every[:7]]
    assert [p for _, p in got] == pytest.approx([p for p, _ in every[:7]])
    assert got[0][0] == tuple(int(np.argmax(p)) for p in probs)  # the argmax first


def test_selection_returns_the_best_candidate_and_never_worse_than_the_ground_truth(space):
    rng = np.random.default_rng(1)
    gt = space.sample_unique(rng, 20)
    pairs = _pairs(space, gt)
    search = space.sample_unique(np.random.default_rng(2), 4)
    predictor = space.sample_unique(np.random.default_rng(3), 4)
    pool = candidate_pool(space, search, predictor, pairs, ground_truth_top_k=3)
    scorer = CountingScorer()
    chosen = select_architecture(space, pool, scorer, "synthetic", pairs)  # no refinement
    every = [a for a, _, _ in pool]
    assert chosen.chosen == max(every, key=fitness)
    assert fitness(chosen.chosen) >= pairs["accuracy"].max()
    assert set(scorer.calls) == set(every) - set(gt)  # the ground truth is never scored again
    assert chosen.new_evaluations == len(scorer.calls)
    table = chosen.table
    assert table["chosen"].sum() == 1 and table.loc[table["chosen"], "score"].iloc[0] == table["score"].max()
    assert (table.loc[table["origin"] == "ground_truth", "scored_by"] == "ground_truth").all()
    assert table.loc[table["origin"] == "search", "search_rank"].tolist() == list(range(1, 5))


def test_pool_keeps_the_ground_truth_best_when_the_search_and_predictor_are_bad(space):
    worst = tuple(int(i) for i in WEIGHTS.argmin(axis=1))
    gt = space.sample_unique(np.random.default_rng(5), 30)
    pairs = _pairs(space, gt)
    pool = candidate_pool(space, [worst], [worst], pairs, ground_truth_top_k=1)
    chosen = select_architecture(space, pool, CountingScorer(), "synthetic", pairs)
    assert fitness(chosen.chosen) == pairs["accuracy"].max()
    assert chosen.table.set_index("arch").loc[space.to_string(chosen.chosen), "origin"] == "ground_truth"


def test_refinement_climbs_to_the_known_best_within_its_budget(space):
    start = tuple(int(i) for i in WEIGHTS.argmin(axis=1))
    scorer = CountingScorer()
    chosen = select_architecture(space, [(start, "search", 1)], scorer, "synthetic", refine_budget=200,
                                 refine_per_step=4, rank_neighbours=lambda archs: np.array([fitness(a) for a in archs]))
    assert chosen.chosen == BEST
    assert chosen.new_evaluations == len(set(scorer.calls)) <= 1 + 200
    # without a ranking the order is random but seeded, and the budget is a hard bound
    capped = select_architecture(space, [(start, "search", 1)], CountingScorer(), "synthetic", refine_budget=5,
                                 refine_per_step=2, seed=3)
    assert capped.new_evaluations == 1 + 5
    again = select_architecture(space, [(start, "search", 1)], CountingScorer(), "synthetic", refine_budget=5,
                                refine_per_step=2, seed=3)
    assert capped.table["arch"].tolist() == again.table["arch"].tolist()


def test_a_bounded_pool_takes_each_sources_best_within_the_bound(space):
    """When the unbounded favourites are all over the bound, the pool still holds the predictor's and
    the ground truth's best within it (before: filtered after the top-k, the pool could be empty)."""
    gt = space.sample_unique(np.random.default_rng(5), 40)
    pairs = _pairs(space, gt)
    cost = fitness  # a stand-in latency: the better, the slower (as convolutions are)
    bound = float(np.median([cost(a) for a in gt]))
    within = lambda a: cost(a) <= bound  # noqa: E731
    predict = lambda archs: np.array([fitness(a) for a in archs])  # noqa: E731
    top = predictor_top(space, predict, 3, 20000, seed=0, admissible=within)
    assert len(top) == 3 and all(within(a) for a, _ in top)
    every_within = [a for a in space.enumerate() if within(a)]
    assert [a for a, _ in top][0] == max(every_within, key=fitness)
    assert not within(BEST)  # the unbounded favourite is over the bound
    pool = candidate_pool(space, [BEST], [a for a, _ in top], pairs, ground_truth_top_k=2, admissible=within)
    known = sorted((a for a in gt if within(a)), key=fitness, reverse=True)[:2]
    assert [a for a, origin, _ in pool if origin == "ground_truth"] == known
    asked = []
    candidate_pool(space, [], [], pairs, ground_truth_top_k=2, admissible=lambda a: asked.append(a) or within(a))
    assert known[-1] in asked and len(asked) < len(gt)  # lookups stop once two fit (each traces a network)
    chosen = select_architecture(space, pool, CountingScorer(), "synthetic", pairs, admissible=within)
    assert within(chosen.chosen) and fitness(chosen.chosen) >= fitness(known[0])
    with pytest.raises(DataError, match="no candidates within the bound"):
        select_architecture(space, [(BEST, "search", 1)], CountingScorer(), "synthetic", admissible=within)


def test_neighbours_differ_in_one_decision(space):
    arch = space.sample(np.random.default_rng(0))
    found = neighbours(space, arch)
    assert len(found) == sum(k - 1 for k in space.num_choices) == len(set(found))
    assert all(sum(a != b for a, b in zip(arch, n)) == 1 for n in found)


def test_predictor_top_scores_the_whole_space_or_a_seeded_sample(space):
    score = lambda archs: np.array([fitness(a) for a in archs])  # noqa: E731
    assert predictor_top(space, score, 1, 20000, seed=0)[0][0] == BEST  # the space (15,625) is enumerated
    sampled = predictor_top(space, score, 3, 500, seed=0)
    assert sampled == predictor_top(space, score, 3, 500, seed=0) and len(sampled) == 3


def test_run_selection_by_benchmark_lookup_and_off_switch(space, tmp_path):
    table = pd.DataFrame({"arch": [space.to_string(a) for a in space.enumerate()]})
    table["acc"] = [fitness(a) for a in space.enumerate()]
    path = tmp_path / "bench.csv"
    table.to_csv(path, index=False)
    gt = from_dict(GroundTruthConfig, {"source": "benchmark", "num_archs": 10,
                                       "benchmark": {"kind": "csv", "path": str(path), "metric": "acc"}})
    pairs = _pairs(space, space.sample_unique(np.random.default_rng(0), 10))
    start = space.to_string(tuple(int(i) for i in WEIGHTS.argmin(axis=1)))
    genotype = {"arch": start, "top_candidates": [start], "input_shape": [1, 8, 8], "num_classes": 10,
                "supernet_valid_acc": 12.5, "joint_probability": 0.3, "predicted_accuracy": None}
    cfg = SelectionConfig(search_top_k=1, predictor_top_k=0, refine_budget=300, refine_per_step=24)
    found, candidates = run_selection(space, genotype, cfg, gt, pairs)
    assert found["arch"] == space.to_string(BEST)
    assert found["selection"]["scored_by"] == "benchmark:acc" and found["selection"]["score"] == fitness(BEST)
    assert found["search_choice"]["arch"] == start
    assert found["supernet_valid_acc"] is None and found["joint_probability"] is None  # measured for another arch
    assert int(candidates["new"].sum()) == found["selection"]["new_evaluations"]
    off, empty = run_selection(space, genotype, SelectionConfig(enabled=False), None, None)
    assert off["arch"] == start and off["selection"] == {"enabled": False} and empty.empty
    # a cost weight prices FLOPs (the default cost): the result is cheaper, and best by score - weight x FLOPs
    flops = lambda a: space.cost(a, (1, 8, 8), 10).flops_m  # noqa: E731
    weight = 40.0 / max(flops(a) for a in space.enumerate())
    cheap, table = run_selection(space, genotype, SelectionConfig(search_top_k=1, predictor_top_k=0, refine_budget=300,
                                                                   refine_per_step=24, cost_weight=weight), gt, pairs)
    assert flops(space.parse(cheap["arch"])) < flops(BEST)
    assert table["objective"].to_numpy() == pytest.approx(
        [fitness(space.parse(a)) - weight * flops(space.parse(a)) for a in table["arch"]])
    assert table.loc[table["chosen"], "objective"].item() == pytest.approx(table["objective"].max())


def test_bad_selection_settings_are_refused_naming_the_key(space):
    with pytest.raises(ConfigError, match="search.selection.search_top_k: 20000 is more than the 15625"):
        SelectionConfig(search_top_k=20000).check_space(space)
    with pytest.raises(ConfigError, match="search.selection.refine_budget"):
        from_dict(SearchConfig, {"selection": {"refine_budget": -1}}, where="search")
    with pytest.raises(ConfigError, match="search_top_k"):
        SelectionConfig(search_top_k=0)
    with pytest.raises(ConfigError, match=r"search.selection.refine_per_step: 0 must be an integer >= 1"):
        SelectionConfig(refine_per_step=0)
    with pytest.raises(ConfigError, match=r"search.selection.predictor_sample: 2.5 must be an integer >= 1"):
        SelectionConfig(predictor_sample=2.5)
    with pytest.raises(ConfigError, match="no ground_truth settings"):
        run_selection(space, {"arch": space.to_string(BEST)}, SelectionConfig(), None, None)


def test_bad_selection_settings_fail_before_any_node_runs():
    from wpnas.pipelines.params import validate_parameters

    space = {"name": "nats_tss", "options": {"nats_tss": {"C": 4, "N": 1}}}
    with pytest.raises(ConfigError, match="predictor_top_k: 99999 is more than"):
        validate_parameters({"space": space, "search": {"selection": {"predictor_top_k": 99999}},
                             "ground_truth": {}}, ["select_final_architecture"])
    with pytest.raises(ConfigError, match="no ground_truth section"):
        validate_parameters({"space": space, "search": {}}, ["select_final_architecture"])
    validate_parameters({"space": space, "search": {"selection": {"enabled": False}}}, ["select_final_architecture"])


def test_a_cost_weight_trades_score_for_cost_and_zero_keeps_the_best_score(space):
    """The best by score is the costliest here (decision 4 choice 4 adds 5 points and 10 cost
    units); a weight of 1 point per unit makes the cheaper second best win."""
    def cost(arch) -> float:
        return 10.0 if arch[4] == 4 else 0.0

    pool = [(BEST, "search", 1), (BEST[:4] + (3,) + BEST[5:], "search", 2)]
    plain = select_architecture(space, pool, CountingScorer(), "synthetic")
    assert plain.chosen == BEST
    weighted = select_architecture(space, pool, CountingScorer(), "synthetic", penalty=lambda a: 1.0 * cost(a))
    assert weighted.chosen == pool[1][0]
    row = weighted.table[weighted.table["chosen"]].iloc[0]
    assert row["objective"] == pytest.approx(row["score"]) == pytest.approx(fitness(pool[1][0]))
    best_row = weighted.table[weighted.table["arch"] == space.to_string(BEST)].iloc[0]
    assert best_row["objective"] == pytest.approx(fitness(BEST) - 10.0)
    with pytest.raises(ConfigError, match="search.selection.cost_weight: -1"):
        SelectionConfig(cost_weight=-1)


def test_the_selection_note_names_a_costlier_choice_when_the_search_priced_cost():
    from wpnas.pipelines.search.nodes import selection_cost_note

    cfg = from_dict(SearchConfig, {"wpnas": {"reward": {"b1": 0.01, "b2": 0.001}}})
    own = {"arch": "a", "flops_m": 2.0}
    found = {"arch": "b", "flops_m": 3.5, "search_choice": own}
    note = selection_cost_note(cfg, found, own)
    assert note and "3.500 MFLOPs over the search's own 2.000" in note and "b2/b1 = 0.1" in note
    assert selection_cost_note(cfg, {**found, "flops_m": 1.0}, own) is None  # cheaper: nothing to say
    weighted = from_dict(SearchConfig, {"wpnas": {"reward": {"b1": 0.01, "b2": 0.001}},
                                        "selection": {"cost_weight": 0.1}})
    assert selection_cost_note(weighted, found, own) is None
    free = from_dict(SearchConfig, {"wpnas": {"reward": {"b1": 0.01, "b2": 0.0}}})
    assert selection_cost_note(free, found, own) is None
    spos = from_dict(SearchConfig, {"method": "spos_evolution", "wpnas": {"reward": {"b1": 0.01, "b2": 0.001}}})
    assert selection_cost_note(spos, found, own) is None  # its evolution prices no cost (its method says so)
