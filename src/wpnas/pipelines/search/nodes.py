"""Nodes of the search pipeline."""

from __future__ import annotations

from typing import Any

import pandas as pd

from wpnas.config import setup_run
from wpnas.data.splits import ImageSplits
from wpnas.pipelines.params import search_config, space_config
from wpnas.predictors import load_predictor
from wpnas.search import alpha_heatmap, run_search


def search_node(
    warmed_supernet: dict[str, Any],
    predictor_weights: dict[str, Any],
    image_splits: ImageSplits | dict[str, Any],
    run: dict[str, Any],
    space: dict[str, Any],
    search: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, Any, dict[str, Any]]:
    cfg = search_config(search)
    _, search_space = space_config(space)
    run_cfg, device = setup_run(run)
    predictor = load_predictor(predictor_weights, search_space, device=str(device)) if cfg.reward.b1 > 0 else None
    result = run_search(search_space, ImageSplits.coerce(image_splits), warmed_supernet, cfg, device,
                        seed=run_cfg.seed, predictor=predictor)
    figure = alpha_heatmap(result.alpha_trajectory, search_space)
    return result.checkpoint, result.alpha_trajectory, figure, result.final_genotype
