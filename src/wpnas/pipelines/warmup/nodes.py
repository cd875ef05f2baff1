"""Nodes of the warmup pipeline."""

from __future__ import annotations

import logging
from typing import Any

from wpnas.config import setup_run
from wpnas.data.splits import ImageSplits
from wpnas.io.checkpoints import load_checkpoint
from wpnas.pipelines.params import checkpoint_policy, space_config, warmup_config
from wpnas.train.warmup import warmup_supernet

logger = logging.getLogger(__name__)


def warmup(
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    warmup: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    cfg, resume_from = warmup_config(warmup)
    _, search_space = space_config(space)
    run_cfg, device = setup_run(run)
    resume = load_checkpoint(resume_from) if resume_from else None
    checkpoint = warmup_supernet(
        search_space, ImageSplits.coerce(image_splits), cfg, device, seed=run_cfg.seed, resume=resume,
        checkpoint=checkpoint_policy(warmup, run, "warmup"),
    )
    last = checkpoint["history"][-1] if checkpoint["history"] else {}
    summary = {
        "space": search_space.name,
        "epochs": checkpoint["epoch"],
        "seconds": round(checkpoint["seconds"], 2),
        "device": str(device),
        **{k: v for k, v in last.items() if k != "epoch"},
    }
    return checkpoint, summary
