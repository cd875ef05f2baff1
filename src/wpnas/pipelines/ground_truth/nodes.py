"""Nodes of the ground_truth pipeline."""

from __future__ import annotations

from typing import Any

import pandas as pd

from wpnas.config import setup_run
from wpnas.data.splits import ImageSplits
from wpnas.io.supernet_checkpoint import describe_for, restore_supernet
from wpnas.pipelines.params import ground_truth_config, space_config
from wpnas.train.ground_truth import acquire_ground_truth


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
    summary = {
        "space": search_space.name,
        "source": cfg.source,
        "pairs": len(pairs),
        "accuracy_mean": float(pairs["accuracy"].mean()),
        "accuracy_min": float(pairs["accuracy"].min()),
        "accuracy_max": float(pairs["accuracy"].max()),
        "seconds": float(pairs["seconds"].sum()),
    }
    return pairs, summary
