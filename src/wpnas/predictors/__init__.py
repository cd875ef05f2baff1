"""Accuracy predictors (paper Section 3.2): encoders, supervised and few-shot relation predictors,
ranking losses, training, and the Table 2 benchmark protocol."""

from wpnas.predictors.benchmark import (
    BenchmarkRow,
    default_rows,
    inner_cv_score,
    paper_rows,
    run_predictor_benchmark,
    summarize,
    to_markdown,
)
from wpnas.predictors.encoders import ENCODERS, EncodedBatch, build_encoder, to_batch
from wpnas.predictors.losses import LossConfig, pairwise_ranking_loss, predictor_loss
from wpnas.predictors.models import Predictor, PredictorConfig, RelationNet, SupervisedNet, load_predictor
from wpnas.predictors.training import check_pairs, train_predictor

__all__ = [
    "BenchmarkRow",
    "default_rows",
    "inner_cv_score",
    "paper_rows",
    "run_predictor_benchmark",
    "summarize",
    "to_markdown",
    "ENCODERS",
    "EncodedBatch",
    "LossConfig",
    "Predictor",
    "PredictorConfig",
    "RelationNet",
    "SupervisedNet",
    "build_encoder",
    "check_pairs",
    "load_predictor",
    "pairwise_ranking_loss",
    "predictor_loss",
    "to_batch",
    "train_predictor",
]
