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
from wpnas.io.lineage import check_report_inputs, report_sources
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
            accuracy_flops_figure(arch_accuracy_pairs, final_genotype))
