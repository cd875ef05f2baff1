"""WPNAS search (paper step 4): alpha by self-critical policy gradient, weights by SGD."""

from wpnas.pipelines.search.pipeline import create_pipeline

__all__ = ["create_pipeline"]
