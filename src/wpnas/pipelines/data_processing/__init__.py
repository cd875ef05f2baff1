"""Load the configured image source and split it (the ``image_splits`` artifact)."""

from wpnas.pipelines.data_processing.pipeline import create_pipeline

__all__ = ["create_pipeline"]
