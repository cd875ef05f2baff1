"""Nodes of the search pipeline."""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd

from wpnas import tracking
from wpnas.config import setup_run
from wpnas.data.splits import ImageSplits
from wpnas.errors import DataError
from wpnas.fingerprint import check_fingerprint
from wpnas.io.lineage import LINEAGE, search_lineage
from wpnas.io.pairs import check_pairs_source, pairs_fingerprint
from wpnas.pipelines.latency.nodes import measured_latency
from wpnas.pipelines.params import checkpoint_policy, ground_truth_config, latency_table_for, run_config, search_config, \
    space_config
from wpnas.pipelines.workers import run_stage
from wpnas.predictors import load_predictor
from wpnas.search import SearchResult, run_search
from wpnas.experiments.report import closing_line
from wpnas.search.selection import run_selection

logger = logging.getLogger(__name__)


def search_architecture(
    search_supernet: dict[str, Any],
    predictor_weights: dict[str, Any],
    arch_accuracy_pairs: pd.DataFrame,
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    search: dict[str, Any],
    ground_truth_summary: dict[str, Any] | None = None,
    latency: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, Any, dict[str, Any]]:
    """The search by ``search.method`` from ``search_supernet``: the landmark phase's SuperNet, or the
    warmed one when the phase is off (``landmark_phase.enabled: false``). The method says what it
    needs (predictor, landmarks) and what it writes (trajectory, heatmap)."""
    cfg = search_config(search)
    _, search_space = space_config(space)
    warmed_supernet = search_supernet
    needs = cfg.needs
    if needs.pairs:  # the pairs (through the predictor, or as landmarks) are used
        check_pairs_source(ground_truth_summary, arch_accuracy_pairs, warmed_fingerprint(search_supernet))
    if needs.predictor:
        check_fingerprint(
            pairs_fingerprint(arch_accuracy_pairs), (predictor_weights or {}).get("inputs", {}).get("arch_accuracy_pairs"),
            "predictor_weights", DataError,
            hint="The ground-truth pairs changed after the predictor was trained: run the predictor pipeline again",
        )
    inputs = (warmed_supernet, predictor_weights, arch_accuracy_pairs, ImageSplits.coerce(image_splits), run, space,
              search, latency, evaluation)
    # the method's world (WPNAS data parallel, fitness maps sharded), on local workers
    result, on_workers = run_stage(search_result, inputs, run_config(run),
                                   {"run": run, "space": space, "search": search}, "search")
    if on_workers:
        tracking.log_history(result.history, prefix="search/")
    trajectory, figure = cfg.method_class.outputs(result.trajectory, search_space)
    found = {**result.final_genotype,
             LINEAGE: search_lineage((result.checkpoint.get("fingerprint") or {}).get("fingerprint"), trajectory,
                                     arch_accuracy_pairs, predictor_weights)}
    tracking.set_tags({"final_arch": found["arch"], "search_arch": found["arch"]})  # final_arch: until the selection
    log_genotype_metrics(found, "search_choice/")
    if not cfg.selection.enabled:
        log_genotype_metrics(found, "final/")
    logger.info("Search's own choice: %s", closing_line(found, run_id=tracking.active_run_id()))
    return result.checkpoint, trajectory, figure, found


def log_genotype_metrics(genotype: dict[str, Any], prefix: str) -> None:
    tracking.log_metrics({k: genotype.get(k) for k in ("flops_m", "params_m", "predicted_accuracy", "supernet_valid_acc",
                                                       "joint_probability")}, prefix=prefix)


def warmed_fingerprint(supernet: dict[str, Any] | None) -> str | None:
    """The fingerprint of the WarmUp a SuperNet comes from (a landmark phase records the one it continued)."""
    supernet = supernet or {}
    phase = supernet.get("landmark_phase") or {}
    return phase.get("warmed_from") or (supernet.get("fingerprint") or {}).get("fingerprint")


def select_final_architecture(
    search_genotype: dict[str, Any],
    predictor_weights: dict[str, Any] | None,
    arch_accuracy_pairs: pd.DataFrame,
    warmed_supernet: dict[str, Any],
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    search: dict[str, Any],
    ground_truth: dict[str, Any] | None,
    ground_truth_summary: dict[str, Any] | None = None,
    latency: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The final selection (search.selection): the best of a candidate pool by the ground-truth method
    (within ``search.max_latency_ms`` when set); with a latency table, the found network is timed whole."""
    found, table = _select(search_genotype, predictor_weights, arch_accuracy_pairs, warmed_supernet, image_splits, run,
                           space, search, ground_truth, ground_truth_summary, latency, evaluation)
    if search_config(search).uses_latency:
        found = {**found, **measured_latency(found, _latency_table(search_genotype, space, latency, evaluation), latency,
                                             evaluation, space_config(space)[1])}
        logger.info("Search result, timed: %s", closing_line(found, run_id=tracking.active_run_id()))
    return found, table


def _latency_table(genotype: dict[str, Any], space: dict[str, Any], latency: dict[str, Any] | None,
                   evaluation: dict[str, Any] | None) -> Any:
    return latency_table_for(latency, evaluation, space_config(space)[1], genotype["input_shape"],
                             int(genotype["num_classes"]))


def _select(search_genotype, predictor_weights, arch_accuracy_pairs, warmed_supernet, image_splits, run, space, search,
            ground_truth, ground_truth_summary, latency, evaluation) -> tuple[dict[str, Any], pd.DataFrame]:
    cfg = search_config(search).selection
    bound = search_config(search).max_latency_ms
    bounded_by = _latency_table(search_genotype, space, latency, evaluation) if bound is not None else None
    _, search_space = space_config(space)
    gt_cfg = ground_truth_config(ground_truth) if ground_truth else None
    if cfg.enabled and gt_cfg is not None and gt_cfg.source == "finetune":  # new fine-tunes sit beside the pairs'
        check_pairs_source(ground_truth_summary, arch_accuracy_pairs, warmed_fingerprint(warmed_supernet))
    if not cfg.enabled:
        found, table = run_selection(search_space, search_genotype, cfg, gt_cfg, arch_accuracy_pairs)
        logger.info("Final selection: off (search.selection.enabled: false); the search's own choice is the result")
        return found, table
    run_cfg, device = setup_run(run_config(run))
    predictor = (load_predictor(predictor_weights, search_space, device=str(device))
                 if cfg.predictor_top_k and predictor_weights else None)
    splits = ImageSplits.coerce(image_splits)
    search_cfg = search_config(search)
    priced = search_cfg.needs.latency and cfg.cost_weight > 0  # the cost the search priced: latency, else FLOPs
    cost = (bounded_by or _latency_table(search_genotype, space, latency, evaluation)).latency if priced else None
    started = time.monotonic()
    found, table = run_selection(search_space, search_genotype, cfg, gt_cfg, arch_accuracy_pairs, predictor=predictor,
                                 warmed=warmed_supernet, splits=splits, device=device, seed=run_cfg.seed,
                                 latency=bounded_by, max_latency_ms=bound, cost=cost)
    chosen = found["selection"]
    chosen["seconds"] = round(time.monotonic() - started, 2)
    tracking.log_metrics({"score": chosen["score"], "candidates": chosen["candidates"],
                          "new_evaluations": chosen["new_evaluations"], "seconds": chosen["seconds"]},
                         prefix="selection/")
    tracking.set_tags({"final_arch": found["arch"], "selection_origin": chosen["origin"]})
    log_genotype_metrics(found, "final/")
    own = chosen["search_choice"]
    gt_best = chosen["best_ground_truth"]
    logger.info(
        "Final selection: %s (%s) scores %.2f %% by %s; the search's own choice %.2f %%%s; %d candidates, "
        "%d new ground-truth evaluations in %.0f s",
        found["arch"], chosen["origin"], chosen["score"], chosen["scored_by"], own["score"] if own else float("nan"),
        f", the best ground-truth architecture {gt_best['score']:.2f} %" if gt_best else "", chosen["candidates"],
        chosen["new_evaluations"], chosen["seconds"],
    )
    cost_note = selection_cost_note(search_cfg, found, own)
    if cost_note:
        logger.info(cost_note)
    logger.info("Search result: %s", closing_line(found, run_id=tracking.active_run_id()))
    return found, table


def selection_cost_note(cfg: Any, found: dict[str, Any], own: dict[str, Any] | None) -> str | None:
    """One line when the method priced cost (``cost_price``: WPNAS's b2 > 0) but the selection ranked
    by the ground-truth score alone and chose a costlier architecture than the search's own choice."""
    price = cfg.method_class.cost_price(cfg.settings)
    own_flops = (found.get("search_choice") or {}).get("flops_m")
    if cfg.selection.cost_weight > 0 or price is None or own is None or own_flops is None:
        return None
    b2, b1 = price
    if found["arch"] == own["arch"] or float(found["flops_m"]) <= float(own_flops):
        return None
    unit = "ms" if cfg.needs.latency else "MFLOP"
    rate = f"; b2/b1 = {b2 / b1:.3g} matches the reward" if b1 > 0 else ""
    return (f"Final selection: ranked by the ground-truth score alone (search.selection.cost_weight: 0), it chose "
            f"{float(found['flops_m']):.3f} MFLOPs over the search's own {float(own_flops):.3f}; the reward's cost term "
            f"(b2 = {b2:g} per {unit}) shaped the search, not this choice. Set search.selection.cost_weight "
            f"(accuracy points per {unit}{rate}) to trade accuracy for cost here too")


def search_result(
    warmed_supernet: dict[str, Any],
    predictor_weights: dict[str, Any],
    arch_accuracy_pairs: pd.DataFrame,
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    search: dict[str, Any],
    latency: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
) -> SearchResult:
    """The search, in this process or as one rank of a world."""
    cfg = search_config(search)
    _, search_space = space_config(space)
    splits = ImageSplits.coerce(image_splits)
    table = (latency_table_for(latency, evaluation, search_space, splits.input_shape, splits.num_classes)
             if cfg.uses_latency else None)
    run_cfg, device = setup_run(run_config(run))
    needs = cfg.needs
    predictor = load_predictor(predictor_weights, search_space, device=str(device)) if needs.predictor else None
    landmarks = arch_accuracy_pairs if needs.landmarks else None
    return run_search(search_space, splits, warmed_supernet, cfg, device,
                      seed=run_cfg.seed, predictor=predictor, landmarks=landmarks,
                      checkpoint=checkpoint_policy(search, run, "search"), latency=table)
