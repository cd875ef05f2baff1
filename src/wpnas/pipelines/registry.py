"""Which pipelines exist and how they compose (paper steps 1-4 = ``search``)."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from wpnas.pipelines.data_processing import create_pipeline as data_processing


def all_pipelines() -> dict[str, Pipeline]:
    dp = data_processing()
    pipelines = {
        "data_processing": dp,
        "search": dp,
    }
    pipelines["__default__"] = pipelines["search"]
    return pipelines
