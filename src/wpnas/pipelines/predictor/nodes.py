"""Nodes of the predictor pipeline."""

from __future__ import annotations

from typing import Any

import pandas as pd

from wpnas import tracking
from wpnas.config import setup_run
from wpnas.io.lineage import stamp_predictor
from wpnas.pipelines.params import predictor_config, run_config, space_config
from wpnas.predictors.stage import fit_predictor


def train_predictor(
    arch_accuracy_pairs: pd.DataFrame,
    run: dict[str, Any],
    space: dict[str, Any],
    predictor: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    cfg = predictor_config(predictor)
    _, search_space = space_config(space)
    run_cfg, device = setup_run(run_config(run))
    model, metrics, predictions = fit_predictor(search_space, arch_accuracy_pairs, cfg, seed=run_cfg.seed,
                                                device=str(device))
    tracking.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, prefix="predictor/")
    # stamped with the pairs it was trained on and its own fingerprint (the search and the report check them)
    checkpoint, metrics = stamp_predictor(model.to_checkpoint(), metrics, arch_accuracy_pairs, predictions)
    return checkpoint, metrics, predictions
