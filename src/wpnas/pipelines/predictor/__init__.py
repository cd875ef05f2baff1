"""Predictor (paper step 3): train the few-shot accuracy predictor on the ground truth."""

from wpnas.pipelines.predictor.pipeline import create_pipeline

__all__ = ["create_pipeline"]
