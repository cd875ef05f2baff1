"""Reporting: summary.md and the figures a user looks at after a run (logged to MLflow)."""

from wpnas.pipelines.reporting.pipeline import create_pipeline

__all__ = ["create_pipeline"]
