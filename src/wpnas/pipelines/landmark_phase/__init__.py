"""The landmark phase: the WarmUp continued with the landmark ranking term on the ground truth."""

from wpnas.pipelines.landmark_phase.pipeline import create_pipeline

__all__ = ["create_pipeline"]
