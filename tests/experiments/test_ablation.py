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


# -- a killed ablation started again redoes only what was not finished ---------------------------
def _tiny_stage_inputs():
    import torch

    from wpnas.data.sources import DataConfig, build_image_splits
    from wpnas.train.ground_truth import GroundTruthConfig
    from wpnas.train.warmup import WarmupConfig

    splits = build_image_splits(DataConfig(source="digits", image_size=8, train_limit=300))
    warmup = from_dict(WarmupConfig, {"epochs": 1, "batch_size": 64, "probe_archs": 0,
                                      "augment": {"crop_padding": 1, "flip": False}})
    truth = GroundTruthConfig(num_archs=3, epochs=0, calib_batches=1, batch_size=64)
    search = from_dict(SearchConfig, {"method": "spos_evolution", "epochs": 1, "batch_size": 32,
                                      "eval_valid_limit": 60, "eval_batch_size": 60, "calib_batches": 1,
                                      "evolution": {"population": 3, "generations": 2, "top_k": 2,
                                                    "num_crossover": 1, "num_mutation": 1}})
    cfg = from_dict(AblationConfig, {"seeds": [0, 1], "rows": ["spos"], "references": False,
                                     "ranking": {"calib_batches": 1, "calib_batch_size": 32, "valid_limit": 60}})
    return get_space("nats_tss", C=4, N=1), splits, warmup, truth, search, cfg, torch.device("cpu")


class _Killed(RuntimeError):
    pass


def _spy(monkeypatch, module, name, fail_at=None):
    """Log the seeds ``module.name`` is called with; the ``fail_at``-th call fails (a run killed there)."""
    real = getattr(module, name)
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(kwargs.get("seed"))
        if len(calls) == fail_at:
            raise _Killed("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)
    return calls


def test_a_killed_ablation_redoes_only_the_unfinished_units(tmp_path, monkeypatch):
    import torch

    import wpnas.experiments.ablation as ablation
    from wpnas.io.stage_checkpoint import CheckpointPolicy

    space, splits, warmup, truth, search, cfg, cpu = _tiny_stage_inputs()
    policy = CheckpointPolicy(every=1, resume=True, folder=str(tmp_path / "ckpt"))
    # the reference: an uninterrupted run, without checkpoints
    warmed = ablation.warm_up(space, splits, warmup, cpu, cfg.seeds)
    pairs = ablation.ground_truth(space, splits, truth, cpu, warmed, cfg.seeds)
    straight = ablation.run_rows(space, splits, search, cfg, cpu, warmed, None, pairs, None)

    with monkeypatch.context() as patch:
        _spy(patch, ablation, "warmup_supernet", fail_at=2)
        with pytest.raises(_Killed):
            ablation.warm_up(space, splits, warmup, cpu, cfg.seeds, checkpoint=policy)
    assert any(p.name.startswith("ablation_warmup-") for p in (tmp_path / "ckpt").iterdir())
    with monkeypatch.context() as patch:
        calls = _spy(patch, ablation, "warmup_supernet")
        resumed = ablation.warm_up(space, splits, warmup, cpu, cfg.seeds, checkpoint=policy)
    assert calls == [1]  # seed 0 was finished before the kill: not redone
    for key in warmed:
        assert all(torch.equal(resumed[key]["state_dict"][k], v) for k, v in warmed[key]["state_dict"].items())

    with monkeypatch.context() as patch:
        _spy(patch, ablation, "acquire_ground_truth", fail_at=2)
        with pytest.raises(_Killed):
            ablation.ground_truth(space, splits, truth, cpu, resumed, cfg.seeds, checkpoint=policy)
    with monkeypatch.context() as patch:
        calls = _spy(patch, ablation, "acquire_ground_truth")
        resumed_pairs = ablation.ground_truth(space, splits, truth, cpu, resumed, cfg.seeds, checkpoint=policy)
    assert len(calls) == 1  # seed 1 only
    pd.testing.assert_frame_equal(resumed_pairs.drop(columns="seconds"), pairs.drop(columns="seconds"))

    with monkeypatch.context() as patch:
        _spy(patch, ablation, "run_search", fail_at=2)
        with pytest.raises(_Killed):
            ablation.run_rows(space, splits, search, cfg, cpu, resumed, None, pairs, None, checkpoint=policy)
    with monkeypatch.context() as patch:
        calls = _spy(patch, ablation, "run_search")
        again = ablation.run_rows(space, splits, search, cfg, cpu, resumed, None, pairs, None, checkpoint=policy)
    assert calls == [1]
    same = [c for c in RESULT_COLUMNS if c != "hours"]  # hours are wall time
    pd.testing.assert_frame_equal(again[same], straight[same])
    assert not any(p.name.startswith("ablation_") for p in (tmp_path / "ckpt").iterdir())  # removed when done


@pytest.mark.slow
def test_ablation_ground_truth_shares_each_seeds_fine_tunes_over_map_workers(tmp_path, monkeypatch):
    """run.distributed.map_workers_per_device = 2: the node's fine-tunes run on 2 workers and give
    the pairs of one process, and the finished seeds' file is gone once the node is done."""
    import torch

    from wpnas import distributed
    from wpnas.experiments import ablation as lib
    from wpnas.pipelines.ablation import nodes

    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    space, splits, warmup, _, _, _, device = _tiny_stage_inputs()
    warmed = lib.warm_up(space, splits, warmup, device, [0, 1])
    launched = []
    launch = distributed.launch
    monkeypatch.setattr(distributed, "launch", lambda fn, args, cfg, **kw: launched.append(cfg.nproc_per_node)
                        or launch(fn, args, cfg, **kw))
    space_params = {"name": "nats_tss", "options": {"nats_tss": {"C": 4, "N": 1}}}
    truth = {"num_archs": 3, "epochs": 1, "calib_batches": 1, "batch_size": 64}
    ablation = {"seeds": [0, 1], "rows": ["spos"], "references": False}
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        alone = nodes.ablation_ground_truth(warmed, splits, {"device": "cpu", "checkpoint_dir": str(tmp_path / "one")},
                                   space_params, truth, ablation)
        assert launched == []
        shared = nodes.ablation_ground_truth(warmed, splits, {"device": "cpu", "checkpoint_dir": str(tmp_path / "two"),
                                                     "distributed": {"map_workers_per_device": 2}},
                                    space_params, truth, ablation)
        assert launched == [2]
    finally:
        torch.set_num_threads(threads)
    same = ["seed", "arch", "accuracy", "flops_m", "params_m", "source"]
    assert list(shared["seed"]) == [0, 0, 0, 1, 1, 1]
    pd.testing.assert_frame_equal(shared[same], alone[same], check_exact=False, rtol=1e-5)
    assert not list((tmp_path / "two").glob("ablation_ground_truth*"))  # finished: removed


def test_the_search_pipeline_row_is_the_full_row_plus_the_final_selection(monkeypatch):
    """The ``search_pipeline`` row reuses the full row's search (one search per seed for both rows),
    and its architecture scores at least the best ground-truth pair by the ground-truth method."""
    import dataclasses

    import wpnas.experiments.ablation as ablation
    from wpnas.predictors.stage import PredictorStageConfig
    from wpnas.train.ground_truth import GroundTruthConfig

    space, splits, warmup, _, _, cfg, cpu = _tiny_stage_inputs()
    truth = GroundTruthConfig(num_archs=6, epochs=1, calib_batches=1, batch_size=64)
    search = from_dict(SearchConfig, {
        "epochs": 1, "steps_per_epoch": 2, "batch_size": 32, "valid_batch_size": 32, "eval_every": 0,
        "eval_valid_limit": 60, "eval_batch_size": 60, "calib_batches": 1,
        "wpnas": {"reward": {"b1": 0.01}, "hypernet": {"mode": "fixed"}},
        "selection": {"search_top_k": 2, "predictor_top_k": 2, "ground_truth_top_k": 2, "refine_budget": 2,
                      "refine_per_step": 2}})
    cfg = dataclasses.replace(cfg, seeds=(0,), rows=("ps_predictor_wws", "search_pipeline"))
    warmed = ablation.warm_up(space, splits, warmup, cpu, cfg.seeds)
    pairs = ablation.ground_truth(space, splits, truth, cpu, warmed, cfg.seeds)
    predictors = ablation.train_predictors(space, pairs, from_dict(PredictorStageConfig, {
        "valid_size": 2, "model": {"support_size": 2, "epochs": 2}}), cfg.seeds)
    with pytest.raises(ConfigError, match="search_pipeline"):
        ablation.run_rows(space, splits, search, cfg, cpu, warmed, warmed, pairs, predictors)
    calls = _spy(monkeypatch, ablation, "run_search")
    chosen = []
    selection = ablation.run_selection
    monkeypatch.setattr(ablation, "run_selection", lambda *a, **k: chosen.append(selection(*a, **k)) or chosen[-1])
    results = ablation.run_rows(space, splits, search, cfg, cpu, warmed, warmed, pairs, predictors,
                                ground_truth=truth)
    assert calls == [0]  # the selection row did not search again
    full, selected = (results[results["row"] == r].iloc[0] for r in ("ps_predictor_wws", "search_pipeline"))
    assert selected["hours"] >= full["hours"] and selected["kendall_tau"] == full["kendall_tau"]
    (genotype, table), = chosen
    assert selected["arch"] == genotype["arch"] == table.loc[table["chosen"], "arch"].item()
    assert genotype["selection"]["score"] >= pairs["accuracy"].max()  # never below the best pair
