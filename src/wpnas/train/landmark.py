"""Landmark regularisation of SuperNet training (Yu, Ranftl & Salzmann, CVPR 2021).

"Landmark Regularization: Ranking Guided Super-Net Training in Neural Architecture
Search": architectures whose stand-alone accuracy is known (the *landmarks*; here the
ground-truth table of :func:`wpnas.train.ground_truth.acquire_ground_truth`) add a
pairwise ranking term to the SuperNet loss, so that the SuperNet's losses of the landmark
paths keep the landmarks' true order. Every ``every`` weight steps, ``pairs_per_step``
pairs (better, worse) are drawn uniformly from the ordered pairs whose accuracies differ
by more than ``min_gap``; each path runs on the training batch of that step and

    term = weight * mean_pairs rank(CE(better), CE(worse))

is added to the step's cross-entropy before backward. ``rank`` is

* ``hinge``:    ``relu(margin - (CE(worse) - CE(better)))`` (0 once the better path's loss
  is lower by at least ``margin``);
* ``logistic``: ``softplus(-(CE(worse) - CE(better)))`` (a RankNet-style smooth form).

Defaults and where they come from. The authors' released code
(github.com/kcyu2014/nas-landmarkreg, ``bash/exps/validate-landmarkloss.sh``, marked
"landmark best setting") uses the loss ``mae_relu`` = ``relu(L_better - L_worse)``, i.e.
the hinge with margin 0; coefficient (lambda) 10; one random landmark pair per step
(``landmark_loss_random_pairs 1``); the term on every step; 50 landmark architectures.
Those are our defaults (``loss="hinge"``, ``margin=0.0``, ``weight=10.0``,
``pairs_per_step=1``, ``every=1``). ``min_gap=0.0`` (ties carry no order) is our choice.
The same code starts the term only after a plain SuperNet warm-up (150 of 400 epochs on
NAS-Bench-201) and ramps lambda from 0 to its value on a cosine ("cosine_increase"):
``start = 0.375`` (the fraction of the stage's weight steps before the term begins) and
``ramp = "cosine"`` are our defaults too (``schedule(total_steps)`` sets the stage length;
without it the term has full weight from the first step). Measured on the embedded
digits, the term at full weight from the first step wrecked the SuperNet's accuracy
(inherited-weight MSE 0.53 against 0.005 without it; benchmarks/README.md). One
difference remains: that code evaluates the landmark paths on a *validation* batch,
here they run on the training batch of the step. The paper's text itself could not be
retrieved while writing this, so the numbers above are the code's, not the PDF's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from wpnas import distributed
from wpnas.errors import ConfigError, DataError
from wpnas.io.pairs import read_pairs
from wpnas.seeds import stream_seed
from wpnas.spaces.base import Arch, SearchSpace

#: ``forward(x, arch) -> logits`` of one SuperNet path (a ``SuperNet`` instance is one).
ArchForward = Callable[[torch.Tensor, Arch], torch.Tensor]

LOSSES = ("hinge", "logistic")


@dataclass(frozen=True)
class LandmarkConfig:
    """Landmark regularisation settings (defaults: the authors' code, see the module doc)."""

    enabled: bool = False
    weight: float = 10.0
    every: int = 1
    pairs_per_step: int = 1
    loss: Literal["hinge", "logistic"] = "hinge"
    margin: float = 0.0
    min_gap: float = 0.0
    start: float = 0.375
    ramp: Literal["cosine", "none"] = "cosine"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and 0 <= self.start < 1):
            raise ConfigError(f"landmark.start: {self.start!r} must be in [0, 1) (fraction of the stage's steps)")
        if self.ramp not in ("cosine", "none"):
            raise ConfigError(f"landmark.ramp: {self.ramp!r} is not one of ['cosine', 'none']")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ConfigError(f"landmark.weight: {self.weight!r} must be a finite number >= 0")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ConfigError(f"landmark.every: {self.every!r} must be an integer >= 1 (apply every k steps)")
        if isinstance(self.pairs_per_step, bool) or not isinstance(self.pairs_per_step, int) or self.pairs_per_step < 1:
            raise ConfigError(f"landmark.pairs_per_step: {self.pairs_per_step!r} must be an integer >= 1")
        if self.loss not in LOSSES:
            raise ConfigError(f"landmark.loss: {self.loss!r} is not one of {list(LOSSES)}")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ConfigError(f"landmark.margin: {self.margin!r} must be a finite number >= 0")
        if not (math.isfinite(self.min_gap) and self.min_gap >= 0):
            raise ConfigError(f"landmark.min_gap: {self.min_gap!r} must be a finite number >= 0 (accuracy points)")


def pairwise_ranking_loss(
    loss_better: torch.Tensor,
    loss_worse: torch.Tensor,
    kind: str = "hinge",
    margin: float = 0.0,
) -> torch.Tensor:
    """Elementwise ranking penalty for pairs whose first path should have the lower loss.

    hinge: ``relu(margin - (loss_worse - loss_better))``; logistic:
    ``softplus(-(loss_worse - loss_better))`` (``margin`` unused).
    """
    diff = loss_worse - loss_better
    if kind == "hinge":
        return F.relu(margin - diff)
    if kind == "logistic":
        return F.softplus(-diff)
    raise ConfigError(f"landmark.loss: {kind!r} is not one of {list(LOSSES)}")


class LandmarkRegularizer:
    """Draws landmark pairs and computes the weighted ranking term on a batch.

    ``pairs`` is a ground-truth table (columns ``arch``, canonical strings of ``space``,
    and ``accuracy`` in percent); it is validated here, before any training.
    """

    def __init__(self, space: SearchSpace, pairs: pd.DataFrame, cfg: LandmarkConfig, seed: int = 0) -> None:
        self.cfg = cfg
        self.space = space
        archs, acc = _parse_landmarks(space, pairs)
        order = np.argsort(acc, kind="stable")  # ascending accuracy
        self.archs: list[Arch] = [archs[i] for i in order]
        self.accuracies: np.ndarray = acc[order]
        # For landmark i (ascending), its worse partners are landmarks 0 .. counts[i]-1:
        # those more than min_gap below it. Pairs are drawn uniformly through the cumsum.
        self._counts = np.searchsorted(self.accuracies, self.accuracies - cfg.min_gap, side="left")
        self._cum = np.cumsum(self._counts)
        self.num_pairs = int(self._cum[-1])
        if self.num_pairs == 0:
            raise DataError(
                f"landmarks: no usable ordered pair among {len(self.archs)} architectures: every two "
                f"accuracies differ by at most landmark.min_gap={cfg.min_gap} (accuracies "
                f"{self.accuracies.min():.4g}..{self.accuracies.max():.4g}); need at least two that differ"
            )
        self.rng = np.random.default_rng(stream_seed(seed, "landmark"))
        self._total: torch.Tensor | None = None
        self._applied = 0
        self.total_steps: int | None = None

    def schedule(self, total_steps: int) -> None:
        """Apply ``start`` and ``ramp`` over a stage of ``total_steps`` weight steps.

        Without a schedule the term has its full weight from the first step."""
        self.total_steps = int(total_steps)

    def weight_at(self, step: int) -> float:
        """The term's weight at trainer step ``step``: 0 before ``start`` of the stage, then
        (``ramp: cosine``) rising from 0 to ``weight`` on a half cosine by the stage's end."""
        cfg = self.cfg
        if not cfg.enabled:
            return 0.0
        if self.total_steps is None:
            return cfg.weight
        first = int(cfg.start * self.total_steps)
        if step < first:
            return 0.0
        if cfg.ramp == "none":
            return cfg.weight
        span = max(self.total_steps - first, 1)
        return cfg.weight * 0.5 * (1.0 - math.cos(math.pi * min(step - first + 1, span) / span))

    def __len__(self) -> int:
        return len(self.archs)

    def due(self, step: int) -> bool:
        """Whether the term applies at trainer step ``step`` (counted before the step)."""
        return step % self.cfg.every == 0 and self.weight_at(step) > 0

    def sample_pairs(self) -> list[tuple[Arch, Arch]]:
        """``pairs_per_step`` (better, worse) pairs, uniform over the usable ordered pairs."""
        ks = self.rng.integers(0, self.num_pairs, size=self.cfg.pairs_per_step)
        better = np.searchsorted(self._cum, ks, side="right")
        worse = ks - (self._cum[better] - self._counts[better])
        return [(self.archs[int(b)], self.archs[int(w)]) for b, w in zip(better, worse)]

    def loss(self, forward: ArchForward, x: torch.Tensor, y: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """``weight`` times the mean ranking penalty of freshly sampled pairs on (x, y).

        Each distinct architecture of the draw runs once on the same batch.
        """
        pairs = self.sample_pairs()
        archs = list(dict.fromkeys(a for pair in pairs for a in pair))
        ce = torch.stack([F.cross_entropy(forward(x, arch).float(), y) for arch in archs])
        weight = self.cfg.weight if step is None else self.weight_at(step)
        if not distributed.current().active:
            return weight * self._term(ce, archs, pairs)
        # Data parallel: each rank holds its share of the batch, so its CEs are share means. The
        # penalty is not linear in them: it is computed on the batch CEs (the mean over the ranks,
        # the same on every rank) and its gradient applied to the local CEs through a surrogate
        # whose value is the term and whose gradient, averaged over the ranks, is the gradient
        # one process computes on the whole batch.
        batch_ce = distributed.all_reduce_mean_tensor(ce).requires_grad_(True)
        with torch.enable_grad():
            term = weight * self._term(batch_ce, archs, pairs)
            (coeff,) = torch.autograd.grad(term, batch_ce)
        linear = (coeff * ce).sum()
        return linear + (term.detach() - linear.detach())

    def _term(self, ce: torch.Tensor, archs: list[Arch], pairs: list[tuple[Arch, Arch]]) -> torch.Tensor:
        """Mean ranking penalty of ``pairs`` given the CE of each of ``archs``."""
        where = {arch: i for i, arch in enumerate(archs)}
        better = ce[[where[b] for b, _ in pairs]]
        worse = ce[[where[w] for _, w in pairs]]
        return pairwise_ranking_loss(better, worse, self.cfg.loss, self.cfg.margin).mean()

    def extra_loss(
        self, step: int, forward: ArchForward, x: torch.Tensor, y: torch.Tensor
    ) -> Callable[[], torch.Tensor] | None:
        """A zero-argument callable computing the term (for ``Trainer.step``), or None when not due.

        Each computed term is also summed on the device for :meth:`pop_mean` (no host sync).
        """
        if not self.due(step):
            return None

        def compute() -> torch.Tensor:
            term = self.loss(forward, x, y, step)
            value = term.detach().double()
            self._total = value if self._total is None else self._total + value
            self._applied += 1
            return term

        return compute

    def pop_mean(self) -> float | None:
        """Mean of the terms applied since the last call (None if none), then reset."""
        if self._applied == 0 or self._total is None:
            return None
        mean = float(self._total) / self._applied
        self._total, self._applied = None, 0
        return mean

    def state_dict(self) -> dict[str, Any]:
        """The pair generator's state (plain Python types, safe for ``weights_only`` loading)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    def describe(self) -> dict[str, Any]:
        """What a checkpoint records about the landmarks used."""
        return {"enabled": self.cfg.enabled, "pairs": len(self.archs), "ordered_pairs": self.num_pairs}


def _parse_landmarks(space: SearchSpace, pairs: pd.DataFrame) -> tuple[list[Arch], np.ndarray]:
    """Choice tuples and accuracies of a ground-truth table (the shared pairs check)."""
    tokens, acc = read_pairs(space, pairs, min_pairs=2, what="landmarks")
    return [tuple(int(v) for v in row) for row in tokens], acc
