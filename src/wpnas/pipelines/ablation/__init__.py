"""Paper Table 1: SPOS, + landmark, + PS, + predictor, + WWS, over several seeds."""

from wpnas.pipelines.ablation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
