"""Project pipelines (Kedro glue)."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from wpnas.pipelines import registry


def register_pipelines() -> dict[str, Pipeline]:
    return registry.all_pipelines()
