"""SPOS evolutionary search: mutation/crossover on any space, the search itself, checkpoints, bad input."""

from __future__ import annotations

import io
import logging
from collections import Counter

import numpy as np
import pytest
import torch

from wpnas.errors import ArchitectureError, CheckpointError, ConfigError
from wpnas.search.evolution import Evolution, EvolutionConfig, check_evolution, evolve
from wpnas.spaces import get_space

from .conftest import ToySpace

#: Unequal choice counts, one single-choice decision; 86,400 architectures.
WIDE = (3, 5, 2, 4, 6, 3, 5, 1, 4, 2)
TARGET = (2, 4, 1, 3, 5, 0, 2, 0, 3, 1)
SMALL = EvolutionConfig(population=20, generations=10, top_k=5, num_crossover=10, num_mutation=10)


def hamming_fitness(archs):
    return [-float(sum(a != b for a, b in zip(arch, TARGET))) for arch in archs]


def additive_fitness(space, seed):
    scores = np.random.default_rng(seed).normal(size=(space.num_decisions, space.max_choices))

    def fitness(archs):
        return [float(sum(scores[l, a] for l, a in enumerate(arch))) for arch in archs]

    return fitness, float(sum(scores[l, :k].max() for l, k in enumerate(space.num_choices)))


@pytest.fixture(scope="module")
def nats():
    return get_space("nats_tss", C=8, N=1)


def nats_cost(space):
    return lambda arch: space.cost(arch, (1, 16, 16), 10).flops_m


# -- mutate / crossover ------------------------------------------------------------------
@pytest.mark.parametrize("sizes", [WIDE, (2, 5, 3, 1, 4), (1, 7)])
def test_mutate_and_crossover_never_leave_the_space(sizes):
    space = ToySpace(sizes)
    rng = np.random.default_rng(0)
    for _ in range(500):
        a, b = space.sample(rng), space.sample(rng)
        prob = float(rng.random())
        child = space.mutate(a, rng, prob)
        assert space.validate(child) == child
        child = space.crossover(a, b, rng)
        assert space.validate(child) == child


def test_mutate_with_prob_one_changes_every_multi_choice_decision():
    space = ToySpace(WIDE)
    rng = np.random.default_rng(1)
    for _ in range(300):
        arch = space.sample(rng)
        child = space.mutate(arch, rng, 1.0)
        for a, c, k in zip(arch, child, WIDE):
            assert (c != a) if k > 1 else (c == a)


def test_mutate_resamples_uniformly_among_the_other_choices():
    space = ToySpace(WIDE)
    rng = np.random.default_rng(2)
    counts = Counter(space.mutate(TARGET, rng, 1.0)[4] for _ in range(5000))  # decision 4: 6 choices
    assert TARGET[4] not in counts
    assert sorted(counts) == [c for c in range(6) if c != TARGET[4]]
    assert max(counts.values()) / min(counts.values()) < 1.2


def test_mutate_with_small_prob_mostly_keeps():
    space = ToySpace(WIDE)
    rng = np.random.default_rng(3)
    multi = [l for l, k in enumerate(WIDE) if k > 1]
    changed = 0
    for _ in range(2000):
        arch = space.sample(rng)
        assert space.mutate(arch, rng, 0.0) == arch
        child = space.mutate(arch, rng, 0.05)
        changed += sum(child[l] != arch[l] for l in multi)
    assert 0.03 < changed / (2000 * len(multi)) < 0.07


def test_crossover_takes_each_decision_from_a_parent():
    space = ToySpace(WIDE)
    rng = np.random.default_rng(4)
    a = tuple(0 for _ in WIDE)
    b = tuple(k - 1 for k in WIDE)
    from_a = 0
    for _ in range(1000):
        child = space.crossover(a, b, rng)
        assert all(c in (x, y) for c, x, y in zip(child, a, b))
        from_a += sum(c == x != y for c, x, y in zip(child, a, b))
    assert 0.45 < from_a / (1000 * 9) < 0.55  # 9 decisions where the parents differ
    assert space.crossover(a, a, rng) == a


def test_mutate_and_crossover_validate_their_input():
    space = ToySpace(WIDE)
    rng = np.random.default_rng(0)
    with pytest.raises(ArchitectureError, match="out of range"):
        space.mutate((9,) * len(WIDE), rng, 0.5)
    with pytest.raises(ArchitectureError, match="expected 10"):
        space.crossover(TARGET, TARGET[:3], rng)
    with pytest.raises(ConfigError, match=r"1\.5.*\[0, 1\]"):
        space.mutate(TARGET, rng, 1.5)


# -- the search -------------------------------------------------------------------------
def test_evolution_finds_a_hidden_target_and_is_deterministic():
    space = ToySpace(WIDE)
    cfg = EvolutionConfig(population=20, generations=15, top_k=5, num_crossover=10, num_mutation=10)
    for seed in range(5):
        run = evolve(space, hamming_fitness, cfg, seed=seed)
        assert run.best() == (TARGET, 0.0)
        assert run.generation == 15 and run.done
        assert len(run.evaluated) <= 20 + 14 * 20  # a fraction of the 86,400 architectures
    again = evolve(space, hamming_fitness, cfg, seed=4)
    assert again.history == run.history and again.population == run.population
    assert evolve(space, hamming_fitness, cfg, seed=5).history != run.history


def test_evolution_beats_random_search_with_the_same_evaluations(nats):
    evo_regret, random_regret = [], []
    for seed in range(5):
        fitness, optimum = additive_fitness(nats, 100 + seed)
        run = evolve(nats, fitness, SMALL, seed=seed)
        sample = nats.sample_unique(np.random.default_rng(seed), len(run.evaluated))
        evo_regret.append(optimum - run.best()[1])
        random_regret.append(optimum - max(fitness(sample)))
    assert np.mean(evo_regret) < 0.5 * np.mean(random_regret)


def test_step_metrics_and_elitism(nats):
    fitness, _ = additive_fitness(nats, 7)
    run = Evolution(nats, fitness, SMALL, seed=0)
    with pytest.raises(RuntimeError, match="step"):
        run.best()
    first = run.step()
    assert first["generation"] == 1 and first["new"] == first["evaluated"] == 20
    for _ in range(4):
        metrics = run.step()
        population = run.population
        assert len(population) == 20 and len(set(a for a, _ in population)) == 20
        assert [f for _, f in population] == sorted((f for _, f in population), reverse=True)
        assert metrics["best_fitness"] == run.best()[1] == population[0][1]
        assert metrics["mean_fitness"] == pytest.approx(np.mean([f for _, f in population]))
        assert metrics["evaluated"] == len(run.evaluated)
    best = [h["best_fitness"] for h in run.history]
    means = [h["mean_fitness"] for h in run.history]
    assert best == sorted(best) and means == sorted(means)
    assert sum(h["new"] for h in run.history) == run.history[-1]["evaluated"]


def test_no_architecture_is_evaluated_twice(nats):
    fitness, _ = additive_fitness(nats, 3)
    calls: list[list] = []

    def counting(archs):
        calls.append(list(archs))
        return fitness(archs)

    run = evolve(nats, counting, SMALL, seed=1)
    seen = [a for batch in calls for a in batch]
    assert len(calls) == run.generation  # one batched call per generation
    assert len(seen) == len(set(seen)) == len(run.evaluated)
    assert [len(b) for b in calls] == [h["new"] for h in run.history]


def test_flops_bound_is_respected_by_every_evaluated_architecture(nats):
    cost = nats_cost(nats)
    flops = sorted(cost(a) for a in nats.enumerate())
    bound = flops[len(flops) // 10]  # about the cheapest 10%
    fitness, _ = additive_fitness(nats, 5)
    cfg = EvolutionConfig(population=20, generations=6, top_k=5, num_crossover=10, num_mutation=10, max_flops_m=bound)
    run = evolve(nats, fitness, cfg, seed=0, cost=cost)
    assert len(run.evaluated) > 60
    assert all(cost(a) <= bound for a in run.evaluated)
    unbounded = evolve(nats, fitness, SMALL, seed=0)
    assert any(cost(a) > bound for a in unbounded.evaluated)


def test_bound_met_by_fewer_than_population_shrinks_the_population(caplog):
    space = ToySpace((2, 5, 3, 1, 4))  # FLOPs = sum of choices
    cfg = EvolutionConfig(population=10, generations=3, top_k=2, num_crossover=2, num_mutation=2, max_flops_m=1)
    with caplog.at_level(logging.WARNING, logger="wpnas.search.evolution"):
        run = evolve(space, lambda archs: [float(sum(a)) for a in archs], cfg, cost=lambda a: float(sum(a)))
    assert "only 5 architectures" in caplog.text
    assert sorted(run.evaluated) == sorted(a for a in space.enumerate() if sum(a) <= 1)
    assert [h["new"] for h in run.history] == [5, 0, 0]
    assert run.best()[1] == 1.0


def test_large_space_samples_instead_of_enumerating():
    space = ToySpace((10,) * 7)  # 10 million: beyond ENUMERATION_LIMIT
    cfg = EvolutionConfig(population=10, generations=3, top_k=3, num_crossover=5, num_mutation=5, max_flops_m=20)
    run = evolve(space, lambda archs: [-float(sum(a)) for a in archs], cfg, cost=lambda a: float(sum(a)))
    assert len(run.evaluated) >= 20 and all(sum(a) <= 20 for a in run.evaluated)
    with pytest.raises(ConfigError, match=r"meets 20 MFLOPs; the smallest in a seeded sample of 2,000 .* has \d+ MFLOPs"):
        check_evolution(space, cfg, cost=lambda a: 25.0 + sum(a))


# -- checkpoints ------------------------------------------------------------------------
def test_state_dict_round_trip_continues_exactly(nats):
    fitness, _ = additive_fitness(nats, 11)
    cost = nats_cost(nats)
    cfg = EvolutionConfig(population=20, generations=5, top_k=5, num_crossover=10, num_mutation=10,
                          max_flops_m=sorted(cost(a) for a in nats.enumerate())[5000])
    straight = evolve(nats, fitness, cfg, seed=3, cost=cost)

    first = Evolution(nats, fitness, cfg, seed=3, cost=cost)
    for _ in range(3):
        first.step()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    resumed = Evolution(nats, fitness, cfg, seed=99, cost=cost)  # the seed is in the state
    resumed.load_state_dict(state)
    assert resumed.generation == 3 and not resumed.done
    while not resumed.done:
        resumed.step()
    assert resumed.history == straight.history
    assert resumed.population == straight.population
    assert resumed.evaluated == straight.evaluated
    assert resumed.best() == straight.best()


def test_load_state_dict_refuses_another_space(nats):
    run = evolve(ToySpace(WIDE), hamming_fitness, EvolutionConfig(population=5, generations=1, top_k=2))
    other = Evolution(nats, lambda archs: [0.0] * len(archs), SMALL)
    with pytest.raises(CheckpointError, match="toy"):
        other.load_state_dict(run.state_dict())


# -- bad input --------------------------------------------------------------------------
def test_population_larger_than_the_space():
    space = ToySpace((2, 5, 3, 1, 4))
    with pytest.raises(ConfigError, match=r"evolution.population: 200 .* 120 architectures"):
        Evolution(space, hamming_fitness, EvolutionConfig(population=200, top_k=10))


def test_flops_bound_below_the_smallest_names_it(nats):
    cost = nats_cost(nats)
    smallest = min(cost(a) for a in nats.enumerate())
    assert smallest == pytest.approx(0.477514)
    cfg = EvolutionConfig(max_flops_m=0.4)
    with pytest.raises(ConfigError, match=r"evolution.max_flops_m: .*0\.4 .*smallest .*15625 .* 0\.477514"):
        Evolution(nats, hamming_fitness, cfg, cost=cost)
    with pytest.raises(ConfigError, match="no cost function"):
        check_evolution(nats, cfg)


def test_fitness_must_return_one_finite_value_per_architecture():
    space = ToySpace(WIDE)
    cfg = EvolutionConfig(population=5, generations=2, top_k=2)
    with pytest.raises(ValueError, match="4 values for 5"):
        Evolution(space, lambda archs: [0.0] * 4, cfg).step()
    with pytest.raises(ValueError, match="nan"):
        Evolution(space, lambda archs: [float("nan")] * len(archs), cfg).step()


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"population": 0}, "population"),
        ({"generations": 0}, "generations"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 60}, "top_k"),
        ({"population": 2.5}, "population"),
        ({"num_crossover": -1}, "num_crossover"),
        ({"num_mutation": -1}, "num_mutation"),
        ({"num_crossover": 0, "num_mutation": 0}, "num_crossover"),
        ({"top_k": 1}, "top_k"),
        ({"mutation_prob": 0.0}, "mutation_prob"),
        ({"mutation_prob": 1.5}, "mutation_prob"),
        ({"max_flops_m": -1.0}, "max_flops_m"),
        ({"max_tries": 0}, "max_tries"),
    ],
)
def test_invalid_config_names_the_setting(settings, name):
    with pytest.raises(ConfigError, match=rf"evolution\.{name}: "):
        EvolutionConfig(**settings)


def test_default_config_is_spos():
    cfg = EvolutionConfig()
    assert (cfg.population, cfg.generations, cfg.top_k) == (50, 20, 10)
    assert (cfg.num_crossover, cfg.num_mutation, cfg.mutation_prob) == (25, 25, 0.1)
    assert EvolutionConfig(top_k=1, num_crossover=0).top_k == 1
