"""Nodes of the search pipeline."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from wpnas import tracking
from wpnas.config import setup_run
from wpnas.data.splits import ImageSplits
from wpnas.errors import DataError
from wpnas.fingerprint import check_fingerprint
from wpnas.io.lineage import LINEAGE, search_lineage
from wpnas.io.pairs import check_pairs_source, pairs_fingerprint
from wpnas.pipelines.params import checkpoint_policy, run_config, search_config, space_config
from wpnas.pipelines.workers import fans_out, on_workers
from wpnas.predictors import load_predictor
from wpnas.search import SearchResult, alpha_heatmap, run_search
from wpnas.experiments.report import closing_line
from wpnas.search.trajectory import COLUMNS, no_trajectory_figure

logger = logging.getLogger(__name__)


def search_node(
    warmed_supernet: dict[str, Any],
    predictor_weights: dict[str, Any],
    arch_accuracy_pairs: pd.DataFrame,
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    search: dict[str, Any],
    ground_truth_summary: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, Any, dict[str, Any]]:
    cfg = search_config(search)
    _, search_space = space_config(space)
    if cfg.uses_predictor or cfg.uses_landmarks:  # the pairs (through the predictor, or as landmarks) are used
        check_pairs_source(ground_truth_summary, arch_accuracy_pairs,
                           ((warmed_supernet or {}).get("fingerprint") or {}).get("fingerprint"))
    if cfg.uses_predictor:
        check_fingerprint(
            pairs_fingerprint(arch_accuracy_pairs), (predictor_weights or {}).get("inputs", {}).get("arch_accuracy_pairs"),
            "predictor_weights", DataError,
            hint="The ground-truth pairs changed after the predictor was trained: run the predictor pipeline again",
        )
    run_cfg = run_config(run)
    inputs = (warmed_supernet, predictor_weights, arch_accuracy_pairs, image_splits, run, space, search)
    if fans_out(run_cfg):  # WPNAS data parallel, evolution's fitness map sharded, on local workers
        result = on_workers(search_result, inputs, run_cfg, {"run": run, "space": space, "search": search}, "search")
        tracking.log_history(result.history, prefix="search/")
    else:
        result = search_result(*inputs)
    if cfg.method == "wpnas":
        trajectory, figure = result.trajectory, alpha_heatmap(result.trajectory, search_space)
    else:  # methods without alpha: an empty table and a figure that says so
        trajectory, figure = pd.DataFrame(columns=list(COLUMNS)), no_trajectory_figure(cfg.method)
    found = {**result.final_genotype,
             LINEAGE: search_lineage((result.checkpoint.get("fingerprint") or {}).get("fingerprint"), trajectory,
                                     arch_accuracy_pairs, predictor_weights)}
    tracking.set_tags({"final_arch": found["arch"]})
    tracking.log_metrics({k: found.get(k) for k in ("flops_m", "params_m", "predicted_accuracy", "supernet_valid_acc",
                                                    "joint_probability")}, prefix="final/")
    logger.info("Search result: %s", closing_line(found, run_id=tracking.active_run_id()))
    return result.checkpoint, trajectory, figure, found


def search_result(
    warmed_supernet: dict[str, Any],
    predictor_weights: dict[str, Any],
    arch_accuracy_pairs: pd.DataFrame,
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    search: dict[str, Any],
) -> SearchResult:
    """The search, in this process or as one rank of a world."""
    cfg = search_config(search)
    _, search_space = space_config(space)
    run_cfg, device = setup_run(run)
    predictor = load_predictor(predictor_weights, search_space, device=str(device)) if cfg.uses_predictor else None
    landmarks = arch_accuracy_pairs if cfg.uses_landmarks else None
    return run_search(search_space, ImageSplits.coerce(image_splits), warmed_supernet, cfg, device,
                      seed=run_cfg.seed, predictor=predictor, landmarks=landmarks,
                      checkpoint=checkpoint_policy(search, run, "search"))
