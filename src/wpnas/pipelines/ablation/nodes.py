"""Nodes of the ablation pipeline (thin wrappers over :mod:`wpnas.experiments.ablation`)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from wpnas import tracking
from wpnas.config import setup_run
from wpnas.data.splits import ImageSplits
from wpnas.experiments import ablation as lib
from wpnas.pipelines.workers import run_stage
from wpnas.train.ground_truth import log_pair_metrics
from wpnas.pipelines.params import (
    ablation_config,
    checkpoint_policy,
    ground_truth_config,
    predictor_config,
    run_config,
    search_config,
    space_config,
    warmup_config,
)


def ablation_warmup_uniform(image_splits: Any, run: dict, space: dict, warmup: dict, ablation: dict) -> dict[str, Any]:
    cfg, _ = warmup_config(warmup)
    _, search_space = space_config(space)
    _, device = setup_run(run_config(run))
    return lib.warm_up(search_space, ImageSplits.coerce(image_splits), cfg, device, ablation_config(ablation).seeds,
                       checkpoint=checkpoint_policy(warmup, run, "warmup"))


def ablation_ground_truth(warmed: dict, image_splits: Any, run: dict, space: dict, ground_truth: dict,
                 ablation: dict) -> pd.DataFrame:
    cfg = ground_truth_config(ground_truth)
    inputs = (warmed, ImageSplits.coerce(image_splits), run, space, ground_truth, ablation)
    if cfg.source != "finetune":
        return seeds_ground_truth(*inputs)
    # each seed's fine-tunes on local workers
    pairs, on_workers = run_stage(seeds_ground_truth, inputs, run_config(run),
                                  {"run": run, "space": space, "ground_truth": ground_truth, "ablation": ablation},
                                  "ablation ground truth", work=cfg.num_archs)
    if on_workers:
        for _, table in pairs.groupby("seed", sort=False):  # what one process logs as it goes
            log_pair_metrics(table.reset_index(drop=True))
    return pairs


def seeds_ground_truth(warmed: dict, image_splits: Any, run: dict, space: dict, ground_truth: dict,
                       ablation: dict) -> pd.DataFrame:
    """Every seed's pairs, in this process or as one rank of a world (each seed's fine-tunes sharded)."""
    _, search_space = space_config(space)
    _, device = setup_run(run_config(run))
    return lib.ground_truth(search_space, ImageSplits.coerce(image_splits), ground_truth_config(ground_truth), device,
                            warmed, ablation_config(ablation).seeds,
                            checkpoint=checkpoint_policy(ground_truth, run, "ground_truth"))


def ablation_predictors(pairs: pd.DataFrame, run: dict, space: dict, predictor: dict, ablation: dict) -> dict[str, Any]:
    _, search_space = space_config(space)
    _, device = setup_run(run_config(run))
    return lib.train_predictors(search_space, pairs, predictor_config(predictor), ablation_config(ablation).seeds,
                                device=str(device))


def ablation_warmup_landmark(pairs: pd.DataFrame, image_splits: Any, run: dict, space: dict, warmup: dict,
                    ablation: dict) -> dict[str, Any]:
    cfg, _ = warmup_config(warmup)
    abl = ablation_config(ablation)
    _, search_space = space_config(space)
    _, device = setup_run(run_config(run))
    return lib.warm_up(search_space, ImageSplits.coerce(image_splits), cfg, device, abl.seeds, landmarks=pairs,
                       landmark=abl.landmark, checkpoint=checkpoint_policy(warmup, run, "warmup"))


def ablation_rows(warmed: dict, warmed_landmark: dict, pairs: pd.DataFrame, trained: dict, image_splits: Any, run: dict,
         space: dict, search: dict, ablation: dict, ground_truth: dict) -> pd.DataFrame:
    _, search_space = space_config(space)
    _, device = setup_run(run_config(run))
    return lib.run_rows(search_space, ImageSplits.coerce(image_splits), search_config(search),
                        ablation_config(ablation), device, warmed, warmed_landmark, pairs, trained,
                        checkpoint=checkpoint_policy(search, run, "search"),
                        ground_truth=ground_truth_config(ground_truth))


def ablation_references(pairs: pd.DataFrame, trained: dict, run: dict, space: dict, ablation: dict) -> pd.DataFrame:
    _, search_space = space_config(space)
    _, device = setup_run(run_config(run))
    cfg = ablation_config(ablation)
    if not cfg.references:
        return pd.DataFrame(columns=lib.RESULT_COLUMNS)
    return lib.run_references(search_space, cfg, pairs, trained, device=str(device))


def ablation_table1(results: pd.DataFrame, refs: pd.DataFrame, space: dict, ablation: dict) -> tuple[pd.DataFrame, str]:
    _, search_space = space_config(space)
    frame, markdown = lib.table1(results, refs, search_space, ablation_config(ablation))
    for _, r in frame.iterrows():
        tracking.log_metrics({k: r[k] for k in ("kendall_tau_mean", "best_rank_mean", "best_acc_mean")
                              if r[k] is not None}, prefix=f"table1/{r['row']}/")
    return frame, markdown
