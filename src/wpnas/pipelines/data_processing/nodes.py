"""Nodes of the data_processing pipeline."""

from __future__ import annotations

from typing import Any

from wpnas.config import from_dict
from wpnas.data.sources import DataConfig, build_image_splits


def prepare_image_splits(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    cfg = from_dict(DataConfig, data, where="data")
    splits = build_image_splits(cfg)
    return splits.to_checkpoint(), splits.summary()
