"""Nodes of the evaluation pipeline."""

from __future__ import annotations

from typing import Any

from wpnas import tracking
from wpnas.config import setup_run
from wpnas.data.splits import ImageSplits
from wpnas.io.torchscript import TorchScriptExport
from wpnas.pipelines.params import checkpoint_policy, evaluation_config, run_config, space_config
from wpnas.pipelines.workers import run_stage
from wpnas.train.scratch import (
    EvaluationResult,
    evaluate_genotype,
    evaluation_data,
    load_final_model,
    log_evaluation,
    model_export,
)


def evaluate_final_model(
    final_genotype: dict[str, Any],
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    evaluation: dict[str, Any],
) -> tuple[dict[str, Any], TorchScriptExport, dict[str, Any]]:
    cfg = evaluation_config(evaluation)
    _, search_space = space_config(space)
    splits = ImageSplits.coerce(image_splits)
    inputs = (final_genotype, splits, run, space, evaluation)
    work = cfg.repeats if cfg.repeats > 1 else None  # repeated runs are a map; one run trains data parallel
    result, on_workers = run_stage(trained_model, inputs, run_config(run),
                                   {"run": run, "space": space, "evaluation": evaluation}, "evaluation", work=work,
                                   here=evaluation_result)
    if not on_workers:
        return result.checkpoint, result.export, result.metrics
    # on local workers: this process rebuilds and exports rank 0's network, saves, logs
    checkpoint, metrics, history = result
    net = load_final_model(checkpoint)
    export = model_export(net, search_space, search_space.from_string(checkpoint["arch"]),
                          evaluation_data(splits, cfg), cfg)
    tracking.log_history(history, prefix="evaluation/")
    log_evaluation(metrics, export)
    return checkpoint, export, metrics


def evaluation_result(
    final_genotype: dict[str, Any],
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    evaluation: dict[str, Any],
) -> EvaluationResult:
    """Paper step 5, in this process or as one rank of a world (data parallel)."""
    cfg = evaluation_config(evaluation)
    _, search_space = space_config(space)
    run_cfg, device = setup_run(run_config(run))
    data = evaluation_data(ImageSplits.coerce(image_splits), cfg)
    return evaluate_genotype(final_genotype, search_space, data, cfg, device,
                             seed=run_cfg.seed, checkpoint=checkpoint_policy(evaluation, run, "evaluation"))


def trained_model(*inputs: Any) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, float]]]:
    """One worker's part: (final_model checkpoint, metrics, history); a traced module does not pickle."""
    result = evaluation_result(*inputs)
    return result.checkpoint, result.metrics, result.history
