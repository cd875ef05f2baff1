"""The latency table (beyond the paper): per-unit latencies of the space on the deployment device."""

from wpnas.pipelines.latency.pipeline import create_pipeline

__all__ = ["create_pipeline"]
