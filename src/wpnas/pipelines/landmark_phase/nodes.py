"""Nodes of the landmark_phase pipeline."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from wpnas import tracking
from wpnas.config import setup_run
from wpnas.data.splits import ImageSplits
from wpnas.io.pairs import check_pairs_source
from wpnas.pipelines.params import checkpoint_policy, landmark_phase_config, run_config, space_config, warmup_config
from wpnas.pipelines.workers import run_stage
from wpnas.train.warmup import landmark_phase as continue_with_landmarks

logger = logging.getLogger(__name__)


def landmark_warmup(
    warmed_supernet: dict[str, Any],
    arch_accuracy_pairs: pd.DataFrame,
    ground_truth_summary: dict[str, Any] | None,
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    warmup: dict[str, Any],
    landmark_phase: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    cfg = landmark_phase_config(landmark_phase)
    _, search_space = space_config(space)
    if not cfg.enabled:  # the switch back to the paper's search pipeline: the warmed SuperNet, unchanged
        logger.info("landmark phase: off (landmark_phase.enabled: false); the search uses the warmed SuperNet")
        return warmed_supernet, {"enabled": False, "space": search_space.name}
    warmed_fp = ((warmed_supernet or {}).get("fingerprint") or {}).get("fingerprint")
    check_pairs_source(ground_truth_summary, arch_accuracy_pairs, warmed_fp)
    inputs = (warmed_supernet, arch_accuracy_pairs, image_splits, run, space, warmup, landmark_phase)
    checkpoint, on_workers = run_stage(  # data parallel, as the WarmUp
        phase_checkpoint, inputs, run_config(run),
        {"run": run, "space": space, "warmup": warmup, "landmark_phase": landmark_phase}, "landmark phase")
    if on_workers:  # the epochs after the WarmUp's, under the WarmUp's prefix (what one process logs while it trains)
        start = int(warmed_supernet.get("epoch", 0))
        tracking.log_history([row for row in checkpoint["history"] if row["epoch"] > start], prefix="warmup/")
    last = checkpoint["history"][-1] if checkpoint["history"] else {}
    summary = {
        "enabled": True,
        "space": search_space.name,
        **checkpoint["landmark_phase"],
        "seconds": round(float(checkpoint["seconds"]), 2),
        **{k: v for k, v in last.items() if k != "epoch"},
    }
    return checkpoint, summary


def phase_checkpoint(
    warmed_supernet: dict[str, Any],
    arch_accuracy_pairs: pd.DataFrame,
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    warmup: dict[str, Any],
    landmark_phase: dict[str, Any],
) -> dict[str, Any]:
    """The landmark SuperNet, in this process or as one rank of a world (data parallel)."""
    cfg = landmark_phase_config(landmark_phase)
    warm_cfg, _ = warmup_config(warmup)
    _, search_space = space_config(space)
    run_cfg, device = setup_run(run_config(run))
    return continue_with_landmarks(search_space, ImageSplits.coerce(image_splits), warm_cfg, cfg, warmed_supernet,
                                   arch_accuracy_pairs, device, seed=run_cfg.seed,
                                   checkpoint=checkpoint_policy(landmark_phase, run, "landmark_phase"))
