"""Which pipelines exist and how they compose (paper steps 1-4 = ``search``)."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from wpnas.pipelines.data_processing import create_pipeline as data_processing
from wpnas.pipelines.ground_truth import create_pipeline as ground_truth
from wpnas.pipelines.warmup import create_pipeline as warmup


def all_pipelines() -> dict[str, Pipeline]:
    dp = data_processing()
    wu = warmup()
    gt = ground_truth()
    pipelines = {
        "data_processing": dp,
        "warmup": wu,
        "ground_truth": gt,
        "search": dp + wu + gt,
    }
    pipelines["__default__"] = pipelines["search"]
    return pipelines
