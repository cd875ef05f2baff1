"""Nodes of the ground_truth pipeline."""

from __future__ import annotations

from typing import Any

import pandas as pd

from wpnas import tracking
from wpnas.config import setup_run
from wpnas.data.splits import ImageSplits
from wpnas.io.supernet_checkpoint import describe_for, restore_supernet
from wpnas.pipelines.params import ground_truth_config, space_config
from wpnas.train.ground_truth import SUMMARY_METRICS, acquire_ground_truth, summarize


def acquire_pairs(
    warmed_supernet: dict[str, Any],
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    ground_truth: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    cfg = ground_truth_config(ground_truth)
    _, search_space = space_config(space)
    run_cfg, device = setup_run(run)
    splits = ImageSplits.coerce(image_splits)
    supernet = None
    if cfg.source == "finetune":
        expected = describe_for(search_space.name, search_space.options(), splits.in_channels, splits.num_classes)
        supernet = restore_supernet(warmed_supernet, device, expected=expected, source="warmed_supernet")
    pairs = acquire_ground_truth(search_space, cfg, run_cfg.seed, supernet=supernet, splits=splits, device=device)
    stats = summarize(pairs)
    # summary metrics of the whole table (the per-architecture values are in the CSV artifact)
    tracking.log_metrics({name: stats[name] for name in SUMMARY_METRICS}, prefix="ground_truth/")
    summary = {
        "space": search_space.name,
        "source": cfg.source,
        "pairs": len(pairs),
        "accuracy_mean": stats["accuracy_mean"],
        "accuracy_min": stats["accuracy_worst"],
        "accuracy_max": stats["accuracy_best"],
        "best_arch": stats["best_arch"],
        "seconds": stats["seconds_total"],
    }
    return pairs, summary
