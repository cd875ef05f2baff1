"""The WPNAS reward (paper Section 3.4, equations 5 and 6).

    r(A) = -CE(A) + b1 * FSP(A) - b2 * cost(A)

``cost`` is the paper's FLOPs (``reward.cost: flops``) or, beyond the paper, the latency in
milliseconds from a measured table (``reward.cost: latency``, :mod:`wpnas.latency`).

Units, fixed once so that b1 and b2 mean the same thing in every run:

* ``CE``: cross-entropy in nats, the mean over one validation batch, of the SuperNet path
  of A with inherited (and, with a HyperNet, offset) weights. ``-CE`` is the paper's
  ``log p(y | X, A, w)`` per example.
* ``FSP``: the predictor's output in percent accuracy (0..100), the units of the
  accuracies it was trained on. ``b1`` is reward per accuracy point; ``b1 = 0`` turns the
  predictor off (no predictor is needed then).
* ``FLOPs``: millions of FLOPs (MFLOPs, NATS-Bench's convention) of the stand-alone
  network of A for the dataset's input shape and class count. ``b2`` is reward per MFLOP.
  The paper's WPNAS-A / WPNAS-B use b2 = 1e-3 / 1e-5 without stating the unit; read as
  MFLOPs, b2 = 1e-3 makes the whole CIFAR-10 range of NATS-TSS (7.8 to 220 MFLOPs)
  worth about 0.2 nats of CE, the size of CE gaps between architectures, so the penalty
  steers without dominating; in FLOPs it would swamp CE entirely.
* latency: milliseconds of the whole evaluation network on the table's device (the glue
  plus the units of A, :meth:`~wpnas.latency.LatencyTable.latency`); ``b2`` is reward per ms.

``reward.measure: accuracy`` (not the paper's) puts the fraction of the validation batch
the path classifies correctly (0..1) in the place of ``-CE``; the CE is still measured,
logged and checked for divergence.

BN in the reward pass: the path runs in train mode (batch statistics of the validation
batch) under ``no_grad``, with running statistics neither read nor written (see
:func:`batch_statistics`). The SuperNet's running statistics mix every trained path and
would judge each architecture with someone else's statistics; batch statistics are what
the weights were trained with, cost nothing extra, and the sample and the greedy baseline
are normalised the same way on the same batch. Running statistics stay untouched, so the
reward pass never leaks validation data into them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from wpnas.errors import ConfigError, TrainingError
from wpnas.latency import check_cost_name
from wpnas.nn.batchnorm import TrainMode
from wpnas.spaces.base import Arch, SearchSpace

#: Anything that maps architectures to predicted accuracies in percent.
PredictorFn = Callable[[Sequence[Arch]], np.ndarray]


#: What the reward measures on the validation batch: the paper's ``-CE``, or the accuracy.
MEASURES = ("ce", "accuracy")


@dataclass(frozen=True)
class RewardConfig:
    """``b1``: reward per predicted accuracy point (%); ``b2``: penalty per unit of ``cost``
    (``flops``: per MFLOP, the paper; ``latency``: per millisecond of the latency table).

    ``measure``: the weight-dependent term. ``ce`` (the paper): ``-CE`` in nats, mean over
    the validation batch. ``accuracy``: the fraction of the batch classified correctly
    (0..1), in its place; not the paper's, an experiment knob: on plain SuperNets at CPU
    budgets the CE carried no ranking signal where the batch accuracy did, but with the
    landmark term and the predictor the accuracy reward searched far worse
    (benchmarks/README.md, "Why the PS row does not beat SPOS + landmark").
    """

    b1: float = 0.0
    b2: float = 0.0
    measure: str = "ce"
    cost: str = "flops"

    def __post_init__(self) -> None:
        for name in ("b1", "b2"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"reward.{name}: {value!r} must be a finite number >= 0")
        if self.measure not in MEASURES:
            raise ConfigError(f"reward.measure: {self.measure!r} is not one of {list(MEASURES)}")
        check_cost_name(self.cost)

    @property
    def uses_latency(self) -> bool:
        return self.cost == "latency"

    @property
    def uses_predictor(self) -> bool:
        return self.b1 > 0


def as_predictor_fn(predictor: Any) -> PredictorFn:
    """A ``Predictor`` (its ``predict``) or any callable ``archs -> accuracies (%)``."""
    if hasattr(predictor, "predict") and callable(predictor.predict):
        return predictor.predict
    if callable(predictor):
        return predictor
    raise ConfigError(
        f"predictor: expected a Predictor or a callable mapping architectures to accuracies (%), got "
        f"{type(predictor).__name__}"
    )


class PredictionCache:
    """Memoised predictor calls: the search asks for the same architectures over and over."""

    def __init__(self, predictor: Any) -> None:
        self.fn = as_predictor_fn(predictor)
        self.cache: dict[Arch, float] = {}
        self.calls = 0

    def __call__(self, archs: Sequence[Arch]) -> np.ndarray:
        archs = [tuple(int(v) for v in a) for a in archs]
        missing = list(dict.fromkeys(a for a in archs if a not in self.cache))
        if missing:
            self.calls += 1
            values = np.asarray(self.fn(missing), dtype=np.float64).reshape(-1)
            if values.shape != (len(missing),):
                raise ConfigError(
                    f"predictor returned {values.size} values for {len(missing)} architectures; "
                    "expected one predicted accuracy (%) per architecture"
                )
            if not np.isfinite(values).all():
                bad = missing[int(np.flatnonzero(~np.isfinite(values))[0])]
                raise ConfigError(f"predictor returned a non-finite accuracy for architecture {bad}")
            self.cache.update(zip(missing, values.tolist()))
        return np.asarray([self.cache[a] for a in archs], dtype=np.float64)


@dataclass(frozen=True)
class RewardParts:
    """Per-architecture terms (arrays aligned with the architectures) and the total
    (``accuracy``: None when it was not measured)."""

    ce: np.ndarray
    fsp: np.ndarray
    flops_m: np.ndarray
    total: np.ndarray
    accuracy: np.ndarray | None = None
    latency_ms: np.ndarray | None = None


class Reward:
    """Combines measured CE with the cached predictor and cost terms for one space and dataset.

    ``latency``: a :class:`~wpnas.latency.LatencyTable` (or any ``arch -> ms``), needed when
    ``cfg.cost`` is ``latency``."""

    def __init__(
        self,
        space: SearchSpace,
        cfg: RewardConfig,
        input_shape: Sequence[int],
        num_classes: int,
        predictor: Any = None,
        latency: Callable[[Arch], float] | None = None,
    ) -> None:
        if cfg.uses_latency and latency is None:
            raise ConfigError(
                "reward.cost is 'latency' but no latency table was given; build one with "
                "kedro run --pipelines=latency (or set reward.cost: flops)"
            )
        if cfg.uses_predictor and predictor is None:
            raise ConfigError(
                f"reward.b1 = {cfg.b1} weights the predictor, but no predictor was given; "
                "pass a trained predictor or set reward.b1 to 0"
            )
        self.space = space
        self.cfg = cfg
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.predictions = PredictionCache(predictor) if cfg.uses_predictor else None
        self._flops: dict[Arch, float] = {}
        self.latency = latency if cfg.uses_latency else None

    def flops_m(self, archs: Sequence[Arch]) -> np.ndarray:
        out = []
        for arch in archs:
            arch = tuple(arch)
            if arch not in self._flops:
                self._flops[arch] = float(self.space.cost(arch, self.input_shape, self.num_classes).flops_m)
            out.append(self._flops[arch])
        return np.asarray(out, dtype=np.float64)

    def latency_ms(self, archs: Sequence[Arch]) -> np.ndarray:
        """Table latency (ms) of each architecture (the table caches it)."""
        return np.asarray([float(self.latency(tuple(a))) for a in archs], dtype=np.float64)  # type: ignore[misc]

    def cost(self, archs: Sequence[Arch]) -> np.ndarray:
        """What ``b2`` multiplies: MFLOPs, or table milliseconds."""
        return self.latency_ms(archs) if self.latency is not None else self.flops_m(archs)

    def fsp(self, archs: Sequence[Arch]) -> np.ndarray:
        """Predicted accuracy (%); zeros when the predictor is off (``b1 = 0``)."""
        if self.predictions is None:
            return np.zeros(len(archs), dtype=np.float64)
        return self.predictions(archs)

    def static(self, archs: Sequence[Arch]) -> np.ndarray:
        """``b1 * FSP - b2 * cost``: the part of the reward that does not depend on the weights."""
        return self.cfg.b1 * self.fsp(archs) - self.cfg.b2 * self.cost(archs)

    def __call__(self, ce: Sequence[float] | np.ndarray, archs: Sequence[Arch],
                 accuracy: Sequence[float] | np.ndarray | None = None) -> RewardParts:
        """The reward of each architecture from its validation CE (nats) and, for ``measure:
        accuracy``, its accuracy (fraction correct) on the same batch; the CE is checked for
        divergence either way."""
        ce = np.asarray(ce, dtype=np.float64).reshape(-1)
        if ce.shape != (len(archs),):
            raise ValueError(f"got {ce.size} cross-entropies for {len(archs)} architectures")
        if not np.isfinite(ce).all():
            bad = archs[int(np.flatnonzero(~np.isfinite(ce))[0])]
            raise TrainingError(
                f"validation cross-entropy is {ce[~np.isfinite(ce)][0]} for architecture {bad}: the SuperNet "
                "diverged; lower the weight learning rate or check the warmed checkpoint (nothing was saved)"
            )
        if accuracy is not None:
            accuracy = np.asarray(accuracy, dtype=np.float64).reshape(-1)
            if accuracy.shape != (len(archs),):
                raise ValueError(f"got {accuracy.size} accuracies for {len(archs)} architectures")
        if self.cfg.measure == "accuracy" and accuracy is None:
            raise ValueError("reward.measure is 'accuracy': pass each architecture's accuracy")
        fsp = self.fsp(archs)
        flops = self.flops_m(archs)
        latency = self.latency_ms(archs) if self.latency is not None else None
        measured = accuracy if self.cfg.measure == "accuracy" else -ce
        total = measured + self.cfg.b1 * fsp - self.cfg.b2 * (flops if latency is None else latency)
        return RewardParts(ce=ce, fsp=fsp, flops_m=flops, total=total, accuracy=accuracy, latency_ms=latency)


class BatchStatistics:
    """Run a model with BN batch statistics, leaving running statistics untouched; reusable.

    Inside ``with stats():`` every module is in train mode and every BN layer has
    ``track_running_stats`` off (PyTorch then normalises with the batch and neither reads
    nor updates the running buffers), and gradients are off; the flags are restored on exit.

    The module lists are taken once, here (:class:`~wpnas.nn.batchnorm.TrainMode`), so a
    model whose module tree no longer changes (a search's SuperNet) pays no traversal per
    use, and the flags are written straight into the modules' attributes: on the paper's
    NATS-TSS SuperNet the per-call ``model.train()`` and BN flags set through
    ``nn.Module.__setattr__`` cost 4.7 ms of host time per reward pass, this 0.14 ms.
    """

    def __init__(self, model: nn.Module) -> None:
        self.train_mode = TrainMode(model)
        self.norms = tuple(m for m in self.train_mode.modules if isinstance(m, nn.modules.batchnorm._BatchNorm))

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        tracked = [m.track_running_stats for m in self.norms]
        try:
            for m in self.norms:
                m.__dict__["track_running_stats"] = False
            with self.train_mode(), torch.no_grad():
                yield
        finally:
            for m, value in zip(self.norms, tracked):
                m.__dict__["track_running_stats"] = value


def batch_statistics(model: nn.Module) -> contextlib.AbstractContextManager[None]:
    """:class:`BatchStatistics` for one use (``with batch_statistics(model): ...``)."""
    return BatchStatistics(model)()


def path_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in nats (a device scalar; no host sync)."""
    return F.cross_entropy(logits.float(), y)

