"""Ground truth (paper step 2): architecture-accuracy pairs for the predictor."""

from wpnas.pipelines.ground_truth.pipeline import create_pipeline

__all__ = ["create_pipeline"]
