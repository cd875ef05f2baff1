"""Nodes of the warmup pipeline."""

from __future__ import annotations

import logging
from typing import Any

from wpnas import tracking
from wpnas.config import resolve_device, setup_run
from wpnas.data.splits import ImageSplits
from wpnas.io.checkpoints import load_checkpoint
from wpnas.pipelines.params import checkpoint_policy, run_config, space_config, warmup_config
from wpnas.pipelines.workers import run_stage
from wpnas.train import warmup as lib

logger = logging.getLogger(__name__)


def warmup_supernet(
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    warmup: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    _, resume_from = warmup_config(warmup)
    _, search_space = space_config(space)
    run_cfg = run_config(run)
    device = resolve_device(run_cfg.device)
    checkpoint, on_workers = run_stage(warm_checkpoint, (image_splits, run, space, warmup), run_cfg,
                                       {"run": run, "space": space, "warmup": warmup}, "warmup")
    if on_workers:  # data parallel: what one process logs as it trains
        start = int(load_checkpoint(resume_from)["epoch"]) if resume_from else 0
        tracking.log_history([row for row in checkpoint["history"] if row["epoch"] > start], prefix="warmup/")
    last = checkpoint["history"][-1] if checkpoint["history"] else {}
    summary = {
        "space": search_space.name,
        "epochs": checkpoint["epoch"],
        "seconds": round(checkpoint["seconds"], 2),
        "device": checkpoint.get("device", str(device)),
        **{k: v for k, v in last.items() if k != "epoch"},
    }
    if len(checkpoint.get("worlds") or []) > 1:  # resumed under another number of processes
        summary["worlds"] = checkpoint["worlds"]
    return checkpoint, summary


def warm_checkpoint(
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    warmup: dict[str, Any],
) -> dict[str, Any]:
    """The warmed checkpoint (:func:`wpnas.train.warmup.warmup_supernet`), in this process or as
    one rank of a world (data parallel)."""
    cfg, resume_from = warmup_config(warmup)
    _, search_space = space_config(space)
    run_cfg, device = setup_run(run_config(run))
    resume = load_checkpoint(resume_from) if resume_from else None
    return lib.warmup_supernet(search_space, ImageSplits.coerce(image_splits), cfg, device, seed=run_cfg.seed,
                               resume=resume, checkpoint=checkpoint_policy(warmup, run, "warmup"))
