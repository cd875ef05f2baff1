"""Nodes of the evaluation pipeline."""

from __future__ import annotations

from typing import Any

from wpnas.config import setup_run
from wpnas.data.splits import ImageSplits
from wpnas.io.torchscript import TorchScriptExport
from wpnas.pipelines.params import checkpoint_policy, evaluation_config, space_config
from wpnas.train.scratch import evaluate_genotype


def evaluation_node(
    final_genotype: dict[str, Any],
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    evaluation: dict[str, Any],
) -> tuple[dict[str, Any], TorchScriptExport, dict[str, Any]]:
    cfg = evaluation_config(evaluation)
    _, search_space = space_config(space)
    run_cfg, device = setup_run(run)
    result = evaluate_genotype(final_genotype, search_space, ImageSplits.coerce(image_splits), cfg, device,
                               seed=run_cfg.seed, checkpoint=checkpoint_policy(evaluation, run, "evaluation"))
    return result.checkpoint, result.export, result.metrics
