"""The predictor stage (paper step 3): split the ground truth, train, validate.

The paper splits its 200 pairs into 170 for training and 30 for validation; the
validation pairs only measure the predictor (Kendall tau, Pearson, MSE), and when a NAS
benchmark table is configured the predictor is also scored against the whole table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from wpnas.config import from_dict, to_dict
from wpnas.errors import ConfigError, DataError
from wpnas.nasbench import BenchmarkConfig, load_benchmark, ranking_report
from wpnas.predictors.models import Predictor, PredictorConfig
from wpnas.predictors.training import train_predictor
from wpnas.spaces.base import SearchSpace
from wpnas.config import fraction_or_count
from wpnas.io.pairs import read_pairs
from wpnas.seeds import stream_seed


@dataclass(frozen=True)
class PredictorStageConfig:
    """``predictor:`` in the parameters.

    ``preset: paper`` starts from the paper's settings (support 30, 100 epochs, SGD lr
    1e-4, ranking loss); ``preset: default`` from ours (see ``PredictorConfig``).
    ``model`` overrides single fields of the preset. ``valid_size`` pairs (a count, or a
    fraction in (0, 1)) are held out of training for validation (paper: 30 of 200).
    ``accuracy_scale`` declares the pairs' units ('fraction' converts 0-1 to percent);
    undeclared, pairs that are all <= 1.0 are refused as likely fractions.
    """

    preset: Literal["default", "paper"] = "default"
    model: dict[str, Any] = field(default_factory=dict)
    valid_size: float = 30
    split_seed: int = 0
    benchmark: BenchmarkConfig | None = None
    accuracy_scale: Literal["percent", "fraction"] | None = None

    def __post_init__(self) -> None:
        if self.valid_size < 0:
            raise ConfigError(f"predictor.valid_size: {self.valid_size} must be >= 0")
        self.predictor_config()  # validate the model settings now, not after the warm-up

    def predictor_config(self) -> PredictorConfig:
        if self.preset == "paper":
            return PredictorConfig.paper(**self.model)
        return from_dict(PredictorConfig, self.model, where="predictor.model")

    def valid_count(self, total: int) -> int:
        return fraction_or_count(self.valid_size, total)

    @property
    def min_pairs(self) -> int:
        """Fewest ground-truth pairs that can train and validate this predictor."""
        train = self.predictor_config().min_train_pairs
        if self.valid_size >= 1:
            return train + int(self.valid_size)
        return int(np.ceil(train / (1 - self.valid_size))) if self.valid_size < 1 else train


def split_pairs(n: int, valid: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, valid) index split of ``n`` ground-truth pairs."""
    order = np.random.default_rng(stream_seed(seed, "predictor.split")).permutation(n)
    return np.sort(order[valid:]), np.sort(order[:valid])


def fit_predictor(
    space: SearchSpace,
    pairs: pd.DataFrame,
    cfg: PredictorStageConfig,
    seed: int = 0,
    device: str | None = None,
) -> tuple[Predictor, dict[str, Any], pd.DataFrame]:
    """Train on the training part of ``pairs`` and score on the held-out part.

    Returns the predictor, a metrics dict (``valid_*`` on the held-out pairs,
    ``table_*`` against the whole benchmark table when configured; MSE on accuracy / 100,
    as in Table 2) and a table of the held-out predictions (in percent).
    """
    # columns, parse, duplicates, NaN, units: before any training
    _, acc = read_pairs(space, pairs, what="arch_accuracy_pairs", accuracy_scale=cfg.accuracy_scale,
                        scale_key="predictor.accuracy_scale")
    archs = list(pairs["arch"])
    n_valid = cfg.valid_count(len(archs))
    if len(archs) < cfg.min_pairs:
        raise DataError(
            f"{len(archs)} ground-truth pairs are too few: this predictor needs at least {cfg.min_pairs} "
            f"({n_valid} held out for validation plus the training pairs; few-shot needs support_size + 1)"
        )
    train_idx, valid_idx = split_pairs(len(archs), n_valid, cfg.split_seed)
    model_cfg = cfg.predictor_config()
    overrides: dict[str, Any] = {"seed": model_cfg.seed + seed}
    if device is not None:
        overrides["device"] = device
    model_cfg = model_cfg.replace(**overrides)
    predictor, history = train_predictor(space, [archs[i] for i in train_idx], acc[train_idx], model_cfg)
    metrics: dict[str, Any] = {
        "kind": model_cfg.kind,
        "encoder": model_cfg.encoder,
        "train_pairs": int(len(train_idx)),
        "valid_pairs": int(len(valid_idx)),
        "seconds": float(history.get("seconds", 0.0)),
    }
    predictions = pd.DataFrame(columns=["arch", "accuracy", "predicted"])
    if len(valid_idx) >= 2:
        pred = predictor.predict([archs[i] for i in valid_idx])
        # accuracy / 100 so MSE has the units of the Table 2 benchmark (fraction^2)
        metrics.update({f"valid_{k}": v for k, v in ranking_report(pred / 100, acc[valid_idx] / 100).items()})
        predictions = pd.DataFrame(
            {"arch": [archs[i] for i in valid_idx], "accuracy": acc[valid_idx], "predicted": pred}
        )
    if cfg.benchmark is not None:
        metrics.update(_table_metrics(space, predictor, cfg.benchmark, [archs[i] for i in train_idx]))
    metrics["config"] = to_dict(model_cfg)
    return predictor, metrics, predictions


def _table_metrics(
    space: SearchSpace, predictor: Predictor, benchmark: BenchmarkConfig, train_archs: Sequence[str]
) -> dict[str, Any]:
    table = load_benchmark(benchmark, space)
    tokens = np.asarray(table.tokens)
    truth = table.values(benchmark.metric)
    keep = np.ones(len(tokens), dtype=bool)
    keep[table.rows(train_archs)] = False  # score on the architectures it never saw
    pred = predictor.predict(tokens[keep])
    report = ranking_report(pred / 100, truth[keep] / 100)
    return {f"table_{k}": v for k, v in report.items()} | {"table_archs": int(keep.sum())}
