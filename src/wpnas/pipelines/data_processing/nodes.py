"""Nodes of the data_processing pipeline."""

from __future__ import annotations

from typing import Any

from wpnas.data.sources import build_image_splits
from wpnas.pipelines.params import data_config


def prepare_image_splits(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    cfg = data_config(data)
    splits = build_image_splits(cfg)
    return splits.to_checkpoint(), splits.summary()
