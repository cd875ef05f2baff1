"""A WPNAS search priced by latency (wpnas.latency through the runner), on the tiny warmed NATS-TSS."""

import pytest

from tests.search.conftest import search_cfg, warmed
from tests.test_latency import FAST, FakeClock
from wpnas.errors import ConfigError
from wpnas.latency import LatencyTable, build_table, evaluation_builder
from wpnas.search import SearchRunner, run_search


def test_a_wpnas_search_priced_by_latency_records_the_table_and_refuses_to_run_without_one(digits):
    space, checkpoint = warmed("nats_tss", digits)
    clock = FakeClock()
    build = clock.instrument(evaluation_builder(space, 1, 10))
    table = LatencyTable(build_table(space, FAST, (1, 8, 8), 10, build=build, timer=clock), space, build=build)
    cfg = search_cfg(epochs=1, steps_per_epoch=2, reward={"b2": 0.5, "cost": "latency"})
    with pytest.raises(ConfigError, match="no latency table was given"):
        SearchRunner(space, digits, checkpoint, cfg, "cpu", seed=0)
    result = run_search(space, digits, checkpoint, cfg, "cpu", seed=0, latency=table)
    genotype = result.final_genotype
    assert genotype["cost"] == "latency"
    assert genotype["latency_table_ms"] == pytest.approx(table.latency(space.parse(genotype["arch"])))
    assert all(h["latency_ms_mean"] > 0 for h in result.history)
    assert result.checkpoint["fingerprint"]["fields"]["inputs"]["latency"] == table.fingerprint["fingerprint"]
