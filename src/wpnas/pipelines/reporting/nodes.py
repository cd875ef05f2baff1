"""Nodes of the reporting pipeline."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from wpnas import tracking
from wpnas.experiments.report import (
    accuracy_flops_figure,
    check_genotype_keys,
    closing_line,
    predictor_scatter_figure,
    summary_markdown,
)
from wpnas.errors import WpnasError
from wpnas.io.lineage import check_report_inputs, report_sources
from wpnas.pipelines.params import latency_table_for
from wpnas.search.trajectory import alpha_trajectory_figure, no_trajectory_figure
from wpnas.spaces import get_space

logger = logging.getLogger(__name__)

#: Figure title -> file name, as cataloged (conf/base/catalog.yml) and listed in summary.md.
FIGURES = {
    "alpha probabilities over epochs": "alpha_lines.png",
    "alpha: final probabilities, the chosen option boxed (written by the search)": "alpha_heatmap.png",
    "predictor: predicted vs true": "predictor_scatter.png",
    "ground truth: accuracy vs FLOPs": "accuracy_vs_flops.png",
}


def report_run(
    final_genotype: dict[str, Any],
    evaluation_metrics: dict[str, Any],
    alpha_trajectory: pd.DataFrame,
    predictor_validation: pd.DataFrame,
    predictor_metrics: dict[str, Any],
    arch_accuracy_pairs: pd.DataFrame,
    latency: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
) -> tuple[str, Any, Any, Any]:
    check_genotype_keys(final_genotype)
    # before anything is drawn or saved: every input must come from the genotype's run
    check_report_inputs(final_genotype, evaluation_metrics, alpha_trajectory, predictor_metrics, predictor_validation,
                        arch_accuracy_pairs)
    space = get_space(final_genotype["space"], **(final_genotype.get("options") or {}))
    if len(alpha_trajectory):
        alpha_lines = alpha_trajectory_figure(alpha_trajectory, space, chosen=final_genotype["choices"])
    else:
        alpha_lines = no_trajectory_figure(str(final_genotype.get("method", "unknown")))
    run_id = tracking.active_run_id()
    summary = summary_markdown(final_genotype, evaluation_metrics, predictor_metrics, arch_accuracy_pairs,
                               run_id=run_id, figures=FIGURES,
                               sources=report_sources(final_genotype, evaluation_metrics, predictor_metrics))
    tracking.set_tags({"final_arch": final_genotype["arch"], "search_seed": final_genotype.get("seed")})
    logger.info("Result: %s", closing_line(final_genotype, evaluation_metrics, run_id, predictor_metrics))
    return (summary, alpha_lines, predictor_scatter_figure(predictor_validation),
            accuracy_flops_figure(with_table_latency(arch_accuracy_pairs, final_genotype, space, latency, evaluation),
                                  final_genotype))


def with_table_latency(pairs: pd.DataFrame, genotype: dict[str, Any], space: Any, latency: dict[str, Any] | None,
                       evaluation: dict[str, Any] | None) -> pd.DataFrame:
    """``pairs`` with the latency table's ms per architecture (``latency_ms``) when latency was the
    search's cost and the table it used is still there; otherwise unchanged (the figure shows FLOPs)."""
    if genotype.get("cost") != "latency" or pairs is None or not len(pairs) or "input_shape" not in genotype:
        return pairs
    try:
        table = latency_table_for(latency, evaluation, space, genotype["input_shape"], int(genotype["num_classes"]))
    except WpnasError as err:
        logger.warning("accuracy figure: FLOPs on the x-axis, the search's latency table cannot be used: %s", err)
        return pairs
    if table.fingerprint["fingerprint"] != genotype.get("latency_fingerprint"):
        logger.warning("accuracy figure: FLOPs on the x-axis, the newest latency table is not the search's")
        return pairs
    return pairs.assign(latency_ms=[table.latency(space.parse(str(a))) for a in pairs["arch"]])
