"""Paper Table 2: supervised vs few-shot predictors on NAS-benchmark tables."""

from wpnas.pipelines.predictor_benchmark.pipeline import create_pipeline

__all__ = ["create_pipeline"]
