"""Nodes of the ground_truth pipeline."""

from __future__ import annotations

from typing import Any

import pandas as pd

from wpnas import distributed, tracking
from wpnas.config import setup_run
from wpnas.data.splits import ImageSplits
from wpnas.io.pairs import pairs_fingerprint
from wpnas.io.supernet_checkpoint import check_made_from, describe_for, restore_supernet
from wpnas.pipelines.params import checkpoint_policy, ground_truth_config, run_config, space_config
from wpnas.pipelines.workers import fans_out, on_workers, stage_workers
from wpnas.train.ground_truth import SUMMARY_METRICS, acquire_ground_truth, log_pair_metrics, summarize


def acquire_pairs(
    warmed_supernet: dict[str, Any],
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    ground_truth: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    cfg = ground_truth_config(ground_truth)
    _, search_space = space_config(space)
    run_cfg = run_config(run)
    if cfg.source == "finetune" and fans_out(run_cfg, cfg.num_archs):  # the fine-tunes sharded over local workers
        distributed.check_work(cfg.num_archs, stage_workers(run_cfg, cfg.num_archs),
                               "architectures to fine-tune (ground_truth.num_archs)")
        pairs = on_workers(finetune_pairs, (warmed_supernet, image_splits, run, space, ground_truth), run_cfg,
                           {"run": run, "space": space, "ground_truth": ground_truth}, "ground truth",
                           work=cfg.num_archs)
        log_pair_metrics(pairs)
    else:
        pairs = finetune_pairs(warmed_supernet, image_splits, run, space, ground_truth)
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
        # what the table came from (the CSV itself holds only the pairs)
        "inputs": {
            "image_splits": None if image_splits is None else ImageSplits.coerce(image_splits).fingerprint()["fingerprint"],
            "warmed_supernet": ((warmed_supernet or {}).get("fingerprint") or {}).get("fingerprint")
            if cfg.source == "finetune" else None,
        },
        "pairs_fingerprint": pairs_fingerprint(pairs)["fingerprint"],
    }
    return pairs, summary


def finetune_pairs(
    warmed_supernet: dict[str, Any],
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    ground_truth: dict[str, Any],
) -> pd.DataFrame:
    """The pairs table, in this process or as one rank of a world (each rank runs its share)."""
    cfg = ground_truth_config(ground_truth)
    _, search_space = space_config(space)
    run_cfg, device = setup_run(run)
    splits = ImageSplits.coerce(image_splits)
    supernet = None
    if cfg.source == "finetune":
        expected = describe_for(search_space.name, search_space.options(), splits.in_channels, splits.num_classes)
        check_made_from(warmed_supernet, splits, "warmed_supernet")
        supernet = restore_supernet(warmed_supernet, device, expected=expected, source="warmed_supernet")
    return acquire_ground_truth(search_space, cfg, run_cfg.seed, supernet=supernet, splits=splits, device=device,
                                checkpoint=checkpoint_policy(ground_truth, run, "ground_truth"))
