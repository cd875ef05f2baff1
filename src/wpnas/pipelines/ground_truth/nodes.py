"""Nodes of the ground_truth pipeline."""

from __future__ import annotations

from typing import Any

import pandas as pd

from wpnas import tracking
from wpnas.config import setup_run
from wpnas.data.splits import ImageSplits
from wpnas.io.pairs import pairs_fingerprint
from wpnas.io.supernet_checkpoint import check_made_from, describe_for, restore_supernet
from wpnas.pipelines.params import checkpoint_policy, ground_truth_config, run_config, space_config
from wpnas.pipelines.workers import run_stage
from wpnas.train import ground_truth as lib


def acquire_ground_truth(
    warmed_supernet: dict[str, Any],
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    ground_truth: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    cfg = ground_truth_config(ground_truth)
    _, search_space = space_config(space)
    splits = None if image_splits is None else ImageSplits.coerce(image_splits)
    inputs = (warmed_supernet, splits, run, space, ground_truth)
    if cfg.source == "finetune":  # the fine-tunes sharded over local workers
        pairs, on_workers = run_stage(finetune_pairs, inputs, run_config(run),
                                      {"run": run, "space": space, "ground_truth": ground_truth}, "ground truth",
                                      work=cfg.num_archs,
                                      work_name="architectures to fine-tune (ground_truth.num_archs)")
    else:
        pairs, on_workers = finetune_pairs(*inputs), False
    if on_workers:
        lib.log_pair_metrics(pairs)
    stats = lib.summarize(pairs)
    # summary metrics of the whole table (the per-architecture values are in the CSV artifact)
    tracking.log_metrics({name: stats[name] for name in lib.SUMMARY_METRICS}, prefix="ground_truth/")
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
            "image_splits": None if splits is None else splits.fingerprint()["fingerprint"],
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
    run_cfg, device = setup_run(run_config(run))
    splits = ImageSplits.coerce(image_splits)
    supernet = None
    if cfg.source == "finetune":
        expected = describe_for(search_space.name, search_space.options(), splits.in_channels, splits.num_classes)
        check_made_from(warmed_supernet, splits, "warmed_supernet")
        supernet = restore_supernet(warmed_supernet, device, expected=expected, source="warmed_supernet")
    return lib.acquire_ground_truth(search_space, cfg, run_cfg.seed, supernet=supernet, splits=splits, device=device,
                                    checkpoint=checkpoint_policy(ground_truth, run, "ground_truth"))
