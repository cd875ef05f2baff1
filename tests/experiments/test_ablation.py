"""The Table 1 ablation's pieces: row settings, bad input, the table's aggregation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wpnas.config import from_dict
from wpnas.errors import ConfigError
from wpnas.experiments.ablation import (
    PAPER_TABLE1,
    RESULT_COLUMNS,
    ROWS,
    AblationConfig,
    check_ablation,
    row_search_config,
    table1,
)
from wpnas.search import SearchConfig
from wpnas.spaces import get_space

SEARCH = from_dict(SearchConfig, {"wpnas": {"reward": {"b1": 0.01, "b2": 0.001}, "hypernet": {"mode": "fixed"}}})


def test_rows_switch_one_thing_at_a_time():
    cfg = AblationConfig()
    settings = {name: row_search_config(name, SEARCH, cfg.landmark) for name in ROWS}
    assert settings["spos"].method == settings["spos_landmark"].method == "spos_evolution"
    ps, pred, wws = settings["ps"].wpnas, settings["ps_predictor"].wpnas, settings["ps_predictor_wws"].wpnas
    assert (ps.reward.b1, ps.hypernet.mode, ps.landmark.enabled, ps.sampling) == (0.0, "off", True, "probabilistic")
    assert (pred.reward.b1, pred.hypernet.mode) == (0.01, "off")
    assert (wws.reward.b1, wws.hypernet.mode) == (0.01, "fixed")  # the configured HyperNet mode
    assert ps.reward.b2 == pred.reward.b2 == wws.reward.b2 == 0.001  # the rest stays as configured
    off = from_dict(SearchConfig, {"wpnas": {"reward": {"b1": 0.01}, "hypernet": {"mode": "off"}}})
    assert row_search_config("ps_predictor_wws", off, cfg.landmark).wpnas.hypernet.mode == "trained"


@pytest.mark.parametrize("settings, message", [
    ({"rows": ["spos", "darts"]}, "ablation.rows"),
    ({"rows": ["spos", "spos"]}, "ablation.rows"),
    ({"seeds": []}, "ablation.seeds"),
    ({"seeds": [1, 1]}, "ablation.seeds"),
    ({"landmark": {"enabled": False}}, "landmark.enabled"),
    ({"ranking": {"num_archs": 0}}, "ranking"),
])
def test_bad_settings(settings, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(AblationConfig, settings, where="ablation")


def test_checks_before_any_training():
    space = get_space("nats_tss", C=8, N=1)
    no_predictor = from_dict(SearchConfig, {"wpnas": {"reward": {"b1": 0.0}}})
    with pytest.raises(ConfigError, match="b1 = 0.0"):
        check_ablation(space, AblationConfig(), no_predictor)
    check_ablation(space, AblationConfig(rows=("spos", "ps")), no_predictor)  # rows without the predictor
    tiny = from_dict(SearchConfig, {"evolution": {"max_flops_m": 1e-6}})
    with pytest.raises(ConfigError, match="smallest"):
        check_ablation(space, AblationConfig(rows=("spos",)), tiny, (3, 16, 16), 10)
    with pytest.raises(ConfigError, match="15625"):
        check_ablation(space, from_dict(AblationConfig, {"ranking": {"num_archs": 20000, "benchmark": {
            "kind": "csv", "path": __file__, "metric": "x"}}}), SEARCH)


def _results(rows, seeds=(0, 1, 2)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    records = []
    for name in rows:
        for seed in seeds:
            record = {c: None for c in RESULT_COLUMNS}
            record.update(row=name, label=ROWS[name].label, seed=seed, arch=f"a{seed}", kendall_tau=rng.uniform(),
                          mse=rng.uniform(), best_rank=float(seed + 1), best_acc=90.0 + seed, hours=0.1,
                          params_kendall_tau=0.5)
            records.append(record)
    return pd.DataFrame(records, columns=RESULT_COLUMNS)


def test_table_aggregates_over_seeds_with_the_paper_beside():
    space = get_space("nats_sss")
    results = _results(ROWS)
    frame, markdown = table1(results, None, space, AblationConfig())
    assert list(frame["row"]) == list(ROWS)
    spos = frame[frame["row"] == "spos"].iloc[0]
    mine = results[results["row"] == "spos"]
    assert spos["kendall_tau_mean"] == pytest.approx(mine["kendall_tau"].mean())
    assert spos["kendall_tau_std"] == pytest.approx(mine["kendall_tau"].std(ddof=1))
    assert spos["best_rank_mean"] == pytest.approx(2.0) and spos["seeds"] == 3
    assert "s0: a0 (rank 1)" in spos["archs"] and "s2: a2 (rank 3)" in spos["archs"]
    assert spos["paper_best_rank"] == PAPER_TABLE1[("nats_sss", "cifar10")]["spos"][2] == 6529
    assert "| SPOS | " in markdown and "6529" in markdown and "mean ± standard deviation" in markdown
