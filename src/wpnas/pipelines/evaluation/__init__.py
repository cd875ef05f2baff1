"""Evaluation from scratch (paper step 5): train the found architecture, score it on test."""

from wpnas.pipelines.evaluation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
