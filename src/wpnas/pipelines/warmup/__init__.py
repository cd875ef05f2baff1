"""WarmUp (paper step 1): uniform single-path training of the SuperNet weights."""

from wpnas.pipelines.warmup.pipeline import create_pipeline

__all__ = ["create_pipeline"]
