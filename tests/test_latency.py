"""The latency table (wpnas.latency) and latency as a search cost: injected timings, fingerprints, bounds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from wpnas.errors import ConfigError, DataError
from wpnas.fingerprint import record
from wpnas.latency import (
    LatencyConfig,
    LatencyTable,
    Meter,
    build_table,
    cover,
    evaluation_builder,
    expected_fingerprint,
    fit_calibration,
    load_table,
    measure_network,
    trace_units,
    unit_modules,
)
from wpnas.search.config import SearchConfig
from wpnas.search.evolution import Evolution, EvolutionConfig
from wpnas.search.reward import Reward, RewardConfig
from wpnas.search.selection import select_architecture
from wpnas.spaces import get_space

SPACES = {
    "nats_tss": ({"C": 4, "N": 1}, (1, 8, 8)),
    "nats_sss": ({"channels": [8, 16, 24]}, (1, 8, 8)),
    "mobilenet": ({}, (3, 16, 16)),
    "darts": ({"C": 4, "layers": 3}, (3, 8, 8)),
}

FAST = LatencyConfig(warmup=0, repeats=1, calibration_archs=3)


class FakeClock:
    """A clock that only moves when a unit runs: each unit module advances it by a duration drawn from
    its configuration and input shape (not from the table's key), so a network's measured time is exactly
    the sum of its units' injected timings."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def duration(self, module: torch.nn.Module, args: tuple) -> float:
        shape = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
        text = f"{type(module).__name__}{module!r}{shape}"
        return (1 + sum(map(ord, text)) % 97) * 1e-5

    def instrument(self, build):
        def built(arch, device):
            net = build(arch, device)
            for _, module in unit_modules(net):
                module.register_forward_pre_hook(self._advance)
            return net
        return built

    def _advance(self, module, args):
        self.now += self.duration(module, args)


#: The evaluation networks timed for the final report (DARTS with its auxiliary head, which eval mode skips).
NETWORKS = {"darts": {"C": 6, "layers": 4, "auxiliary": True}, "mobilenet": {"width_mult": 0.5}}


def fake_table(name: str, cfg: LatencyConfig = FAST, network: dict | None = None):
    options, shape = SPACES[name]
    space = get_space(name, options)
    clock = FakeClock()
    build = clock.instrument(evaluation_builder(space, shape[0], 10, network))
    data = build_table(space, cfg, shape, 10, network, build=build, timer=clock)
    return space, shape, clock, build, data, LatencyTable(data, space, build=build)


# DARTS and MobileNet through their evaluation networks only (what the final report times; the search
# skeleton is the same code with default options): tracing DARTS's cover costs about a minute
@pytest.mark.parametrize("name,evaluation", [
    ("nats_tss", False), ("nats_sss", False), pytest.param("mobilenet", True, marks=pytest.mark.slow),
    pytest.param("darts", True, marks=pytest.mark.slow)])
def test_table_sum_equals_the_measured_latency_of_networks_with_injected_timings(name, evaluation):
    space, shape, clock, build, data, table = fake_table(name, network=NETWORKS[name] if evaluation else None)
    if evaluation:
        assert data["fingerprint"]["fields"]["network"] == space.check_evaluation_options(NETWORKS[name])
    assert data["glue_ms"] == pytest.approx(0.0, abs=1e-9)  # nothing but the units moves the clock
    rng = np.random.default_rng(11)
    archs = space.sample_unique(rng, 12)
    meter = Meter(torch.device("cpu"), warmup=0, repeats=1, timer=clock)
    for arch in archs:
        measured = measure_network(build(arch, torch.device("cpu")), shape, meter)
        assert measured > 0
        assert table.latency(arch) == pytest.approx(measured, rel=1e-9, abs=1e-9), space.to_string(arch)
    # the table distinguishes architectures: not one constant
    assert len({round(table.latency(a), 9) for a in archs}) > 1


class InNetworkClock(FakeClock):
    """Units timed alone run ``alone`` times slower than inside the network, and a whole network pays
    ``outside`` seconds beyond its units (what a unit timing cannot see)."""

    def __init__(self, alone: float, outside: float) -> None:
        super().__init__()
        self.alone, self.outside, self.inside = alone, outside, False

    def instrument(self, build):
        def built(arch, device):
            net = super(InNetworkClock, self).instrument(build)(arch, device)
            net.register_forward_pre_hook(self._enter)
            net.register_forward_hook(self._leave)
            return net
        return built

    def _enter(self, module, args):
        self.inside = True
        self.now += self.outside

    def _leave(self, module, args, output):
        self.inside = False

    def _advance(self, module, args):
        self.now += self.duration(module, args) * (1.0 if self.inside else self.alone)


@pytest.mark.parametrize("name", ["nats_tss", "nats_sss"])
def test_the_calibration_corrects_units_timed_alone_to_the_whole_networks_time(name):
    """Units alone 1.6x slower than in the network, 0.2 ms outside them: the uncalibrated sum is far off,
    the calibrated table equals the whole network's measured time on architectures it never saw."""
    options, shape = SPACES[name]
    space = get_space(name, options)
    clock = InNetworkClock(alone=1.6, outside=2e-4)
    build = clock.instrument(evaluation_builder(space, shape[0], 10))
    data = build_table(space, LatencyConfig(warmup=0, repeats=1, calibration_archs=6), shape, 10, build=build,
                       timer=clock)
    assert data["unit_scale"] == pytest.approx(1 / 1.6) and data["glue_ms"] == pytest.approx(0.2)
    assert data["ms_per_mflop"] == pytest.approx(0.0, abs=1e-9) and data["calibration_median_abs_rel_error"] < 1e-9
    table = LatencyTable(data, space, build=build)
    meter = Meter(torch.device("cpu"), warmup=0, repeats=1, timer=clock)
    for arch in space.sample_unique(np.random.default_rng(23), 10):
        measured = measure_network(build(arch, torch.device("cpu")), shape, meter)
        raw = 0.2 + sum(data["entries"][u.key]["ms"] for u in table.units(arch))
        assert raw > 1.3 * measured  # the units' sum alone would be 60 % over
        assert table.latency(arch) == pytest.approx(measured, rel=1e-9), space.to_string(arch)


class SlowFirstClock(FakeClock):
    """Each unit (by configuration and input shape) runs 3x slower in its first two real calls (the table's
    capture and its first timed call): a machine busy at first, as a shared VM is."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def _advance(self, module, args):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        text = f"{type(module).__name__}{module!r}{[tuple(a.shape) for a in tensors]}"
        if tensors and tensors[0].device.type != "meta":  # tracing on the meta device runs nothing
            self.calls[text] = self.calls.get(text, 0) + 1
        self.now += self.duration(module, args) * (3.0 if self.calls.get(text, 0) <= 2 else 1.0)


def test_rounds_time_every_unit_in_passes_and_keep_the_statistic():
    options, shape = SPACES["nats_tss"]
    space = get_space("nats_tss", options)

    def entries(clock, rounds):
        build = clock.instrument(evaluation_builder(space, shape[0], 10))
        cfg = LatencyConfig(warmup=0, repeats=1, calibration_archs=3, statistic="min", rounds=rounds)
        return {k: v["ms"] for k, v in build_table(space, cfg, shape, 10, build=build, timer=clock)["entries"].items()}

    steady = entries(FakeClock(), 1)
    assert entries(SlowFirstClock(), 2) == pytest.approx(steady)  # the second pass is the steady one
    once = entries(SlowFirstClock(), 1)
    assert once.keys() == steady.keys() and any(once[k] > 2 * steady[k] for k in steady)


def test_the_calibration_fit_recovers_its_terms_and_leaves_out_what_the_rows_cannot_tell():
    rng = np.random.default_rng(3)
    ms, mflops = rng.uniform(1, 5, 12), rng.uniform(0, 40, 12)
    rows = [{"measured_ms": 0.3 + 0.7 * a + 0.05 * f, "units_ms": a, "units_mflops": f} for a, f in zip(ms, mflops)]
    fit = fit_calibration(rows)
    assert (fit["glue_ms"], fit["unit_scale"], fit["ms_per_mflop"]) == pytest.approx((0.3, 0.7, 0.05))
    # one row: the plain glue (scale 1, no FLOPs term); FLOPs that never change: no FLOPs term
    assert fit_calibration(rows[:1]) == pytest.approx({"glue_ms": rows[0]["measured_ms"] - ms[0], "unit_scale": 1.0,
                                                       "ms_per_mflop": 0.0, "calibration_median_abs_rel_error": 0.0})
    flat = [dict(r, units_mflops=10.0, measured_ms=0.3 + 0.7 * r["units_ms"]) for r in rows]
    assert (fit_calibration(flat)["unit_scale"], fit_calibration(flat)["ms_per_mflop"]) == pytest.approx((0.7, 0.0))
    # no term is negative, whatever the rows say
    worse = [dict(r, measured_ms=2.0 - 0.1 * r["units_ms"]) for r in rows]
    assert min(fit_calibration(worse)[k] for k in ("glue_ms", "unit_scale", "ms_per_mflop")) >= 0.0


def test_a_table_of_the_former_format_is_refused_with_the_command_that_rebuilds_it():
    space, _, _, _, data, _ = fake_table("nats_tss")
    with pytest.raises(DataError, match="format 1.*format 2.*kedro run --pipelines=latency"):
        LatencyTable(dict(data, format=1), space)


def test_cover_takes_every_pair_of_choices_of_nearby_decisions():
    space = get_space("nats_sss", {"channels": [8, 16, 24]})
    archs = cover(space, 1)
    for d in range(space.num_decisions - 1):
        pairs = {(a[d], a[d + 1]) for a in archs}
        assert pairs == {(i, j) for i in range(3) for j in range(3)}
    assert len(archs) == 9


@pytest.mark.parametrize("name", list(SPACES))
def test_remembered_unit_outputs_give_the_keys_of_a_full_trace(name):
    options, shape = SPACES[name]
    space = get_space(name, options)
    build = evaluation_builder(space, shape[0], 10)
    shapes: dict = {}
    archs = space.sample_unique(np.random.default_rng(5), 6)
    for batch in (1, 3):
        for arch in archs:  # later architectures reuse the units the earlier ones ran
            assert trace_units(build, arch, shape, batch, shapes) == trace_units(build, arch, shape, batch)
    assert shapes and all(spec[0] in ("T", "tuple", "list") for spec in shapes.values())


def test_a_unit_missing_from_the_table_is_refused_not_guessed():
    space, shape, clock, build, data, table = fake_table("nats_tss")
    arch = space.sample(np.random.default_rng(0))
    victim = trace_units(build, arch, shape)[1].key
    data = dict(data, entries={k: v for k, v in data["entries"].items() if k != victim})
    with pytest.raises(DataError, match="no entry for unit"):
        LatencyTable(data, space, build=build).latency(arch)


def test_the_fingerprint_refuses_a_table_made_for_another_setting(tmp_path):
    space, shape, _, _, data, table = fake_table("nats_tss")
    table.check(expected_fingerprint(FAST, space, shape, 10))  # its own setting: accepted
    for other, match in [(LatencyConfig(batch_size=2), "batch_size: 2 != 1"),
                         (LatencyConfig(threads=2), "threads: 2 != 1")]:
        with pytest.raises(DataError, match=match):
            table.check(expected_fingerprint(other, space, shape, 10))
    with pytest.raises(DataError, match="input_shape"):
        table.check(expected_fingerprint(FAST, space, (1, 16, 16), 10))
    with pytest.raises(DataError, match="device_name"):
        forged = json.loads(json.dumps(data))  # a table measured on another CPU
        forged["fingerprint"] = record({**data["fingerprint"]["fields"], "device_name": "another CPU"})
        LatencyTable(forged, space).check(expected_fingerprint(FAST, space, shape, 10))
    with pytest.raises(DataError, match="measured for space 'nats_tss', not 'nats_sss'"):
        LatencyTable(data, get_space("nats_sss", {"channels": [8, 16]}))
    # through the saved file, as the search reads it
    folder = tmp_path / "latency_table.json"
    (folder / "2026-01-01T00.00.00.000Z").mkdir(parents=True)
    (folder / "2026-01-01T00.00.00.000Z" / "latency_table.json").write_text(json.dumps(data))
    cfg = LatencyConfig(table_path=str(folder), batch_size=4)
    with pytest.raises(DataError, match="batch_size: 4 != 1"):
        load_table(cfg, space, expected_fingerprint(cfg, space, shape, 10))
    with pytest.raises(DataError, match="does not exist"):
        load_table(LatencyConfig(table_path=str(tmp_path / "none")), space)


def test_latency_bounded_evolution_never_evaluates_or_returns_an_architecture_over_its_bound():
    space, _, _, _, data, table = fake_table("nats_tss")
    rng = np.random.default_rng(3)
    values = sorted(table.latency(a) for a in space.sample_unique(rng, 60))
    bound = values[len(values) // 4]
    cfg = EvolutionConfig(population=8, generations=4, top_k=4, num_crossover=4, num_mutation=4)

    def slow_is_fit(archs):  # the fittest architectures are the slowest: the bound has to bind
        return [table.latency(a) for a in archs]

    free = Evolution(space, slow_is_fit, cfg, seed=0)
    while not free.done:
        free.step()
    assert table.latency(free.best()[0]) > bound
    bounded = Evolution(space, slow_is_fit, cfg, seed=0, latency=table, max_latency_ms=bound)
    while not bounded.done:
        bounded.step()
    assert bounded.evaluated and all(table.latency(a) <= bound for a in bounded.evaluated)
    assert table.latency(bounded.best()[0]) <= bound


def test_bad_latency_settings_are_refused_with_one_clear_error():
    space, shape, _, _, data, table = fake_table("nats_tss")
    with pytest.raises(ConfigError, match=r"reward.cost: 'energy' is not one of \['flops', 'latency'\]"):
        RewardConfig(cost="energy")
    with pytest.raises(ConfigError, match="reward.b2: -0.1 must be a finite number >= 0"):
        RewardConfig(b2=-0.1, cost="latency")
    with pytest.raises(ConfigError, match="no latency table was given"):
        Reward(space, RewardConfig(cost="latency"), shape, 10)
    with pytest.raises(ConfigError, match="search.max_latency_ms: -1"):
        SearchConfig(max_latency_ms=-1)
    with pytest.raises(ConfigError, match="latency.rounds: 0 must be an integer >= 1"):
        LatencyConfig(rounds=0)
    with pytest.raises(ConfigError, match="latency.calibration_archs: 0 must be an integer >= 1"):
        LatencyConfig(calibration_archs=0)
    with pytest.raises(ConfigError, match="below the fastest architecture"):
        table.check_bound(table.lower_bound() * 0.5, "search.max_latency_ms")
    table.check_bound(table.lower_bound() * 1.5, "search.max_latency_ms")
    with pytest.raises(ConfigError, match="latency.device"):
        LatencyConfig(device="tpu")
    with pytest.raises(ConfigError, match="latency.statistic"):
        LatencyConfig(statistic="mean")


def test_the_lower_bound_is_below_every_architecture():
    space, _, _, _, _, table = fake_table("nats_tss")
    assert all(table.latency(a) >= table.lower_bound() - 1e-12
               for a in space.sample_unique(np.random.default_rng(5), 60))
    none = space.validate([0] * space.num_decisions)  # every edge 'none': the fastest cell
    assert table.latency(none) == pytest.approx(table.lower_bound())


def test_the_reward_prices_latency_from_the_table():
    space, shape, _, _, _, table = fake_table("nats_tss")
    archs = space.sample_unique(np.random.default_rng(2), 4)
    reward = Reward(space, RewardConfig(b2=0.5, cost="latency"), shape, 10, latency=table)
    parts = reward(np.ones(4), archs)
    expected = -1.0 - 0.5 * np.asarray([table.latency(a) for a in archs])
    np.testing.assert_allclose(parts.total, expected)
    np.testing.assert_allclose(parts.latency_ms, [table.latency(a) for a in archs])
    flops = Reward(space, RewardConfig(b2=0.5), shape, 10, latency=table)  # cost flops: the table is not used
    assert flops(np.ones(4), archs).latency_ms is None


def test_the_selection_never_chooses_over_the_bound():
    space, _, _, _, _, table = fake_table("nats_tss")
    archs = space.sample_unique(np.random.default_rng(4), 10)
    bound = sorted(table.latency(a) for a in archs)[4]

    def score(candidates):  # slower is better: the bound must bind
        return [min(100.0, 1000 * table.latency(a)) for a in candidates]

    pool = [(a, "search", i + 1) for i, a in enumerate(archs)]
    free = select_architecture(space, pool, score, "test", refine_budget=6)
    assert table.latency(free.chosen) > bound
    bounded = select_architecture(space, pool, score, "test", refine_budget=6,
                                  admissible=lambda a: table.latency(a) <= bound)
    assert table.latency(bounded.chosen) <= bound
    assert all(table.latency(space.parse(a)) <= bound for a in bounded.table["arch"])

