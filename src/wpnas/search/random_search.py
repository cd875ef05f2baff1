"""Random search over the SuperNet: the standard weight-sharing baseline (Li & Talwalkar,
2019; Yu et al., 2020).

``num_archs`` seeded uniform architectures (distinct, and within ``max_flops_m`` when it is
set) are scored with the warmed SuperNet's weights, unchanged: inherited-weight validation
accuracy after BN recalibration, the runner's evaluation and SPOS evolution's fitness
(``search.eval_valid_limit`` images, ``search.calib_batches`` batches, a fixed draw per
architecture). The best one wins. One epoch scores the next ``archs_per_epoch`` of the draw, so
the in-progress checkpoint (the draw and every score) lets a killed search resume where it
stopped. Settings: ``search.random_search``.

:class:`RandomSearch` takes any fitness function (no SuperNet needed); the method wraps it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from wpnas.config import to_dict
from wpnas.errors import CheckpointError, ConfigError
from wpnas.search.config import SearchConfig
from wpnas.search.methods import FrozenSuperNetMethod, SearchContext, StepBatches
from wpnas.search.registry import register_method
from wpnas.seeds import add_stream, stream_seed
from wpnas.spaces.base import Arch, SearchSpace

logger = logging.getLogger(__name__)

KEY = "random_search"
add_stream(KEY, 5171)


@dataclass(frozen=True)
class RandomSearchConfig:
    """``search.random_search``: how many architectures, how many per epoch (a checkpoint
    between epochs), an optional FLOPs bound (millions), and how many draws (repeats, or
    over the bound) may be rejected before the search goes on with fewer."""

    num_archs: int = 100
    archs_per_epoch: int = 10
    max_flops_m: float | None = None
    max_tries: int = 1000

    def __post_init__(self) -> None:
        for name in ("num_archs", "archs_per_epoch", "max_tries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{KEY}.{name}: {value!r}; expected an integer >= 1")
        if self.max_flops_m is not None and not self.max_flops_m > 0:
            raise ConfigError(f"{KEY}.max_flops_m: {self.max_flops_m!r}; expected a number > 0 or null")


class RandomSearch:
    """``cfg.num_archs`` seeded random architectures scored by ``fitness`` (a batch of
    architectures -> higher-is-better scores), ``archs_per_epoch`` per :meth:`step`."""

    def __init__(self, space: SearchSpace, fitness: Callable[[list[Arch]], Sequence[float]],
                 cfg: RandomSearchConfig, seed: int = 0, cost: Callable[[Arch], float] | None = None) -> None:
        if cfg.num_archs > space.size:
            raise ConfigError(f"{KEY}.num_archs: {cfg.num_archs} is more than the {space.size} architectures of "
                              f"{space.name}")
        if cfg.max_flops_m is not None and cost is None:
            raise ConfigError(f"{KEY}.max_flops_m: {cfg.max_flops_m} is set but no cost function was given")
        self.space, self.cfg, self._fitness = space, cfg, fitness
        self.draw = self._draw(np.random.default_rng(stream_seed(seed, KEY)), cost)
        self.scores: dict[Arch, float] = {}
        self.history: list[dict[str, float]] = []

    def _draw(self, rng: np.random.Generator, cost: Callable[[Arch], float] | None) -> list[Arch]:
        bound, chosen, rejected = self.cfg.max_flops_m, {}, 0
        while len(chosen) < self.cfg.num_archs and rejected < self.cfg.max_tries:
            arch = self.space.sample(rng)
            if arch in chosen or (bound is not None and float(cost(arch)) > bound):  # type: ignore[misc]
                rejected += 1
            else:
                chosen[arch] = None
        if not chosen:
            raise ConfigError(f"{KEY}.max_flops_m: no architecture of {self.space.name} within {bound} MFLOPs in "
                              f"{self.cfg.max_tries} draws; expected a larger bound or {KEY}.max_tries")
        if len(chosen) < self.cfg.num_archs:
            logger.warning("random search: %d of %d architectures after %d rejected draws", len(chosen),
                           self.cfg.num_archs, rejected)
        return list(chosen)

    @property
    def num_steps(self) -> int:
        return math.ceil(len(self.draw) / self.cfg.archs_per_epoch)

    @property
    def done(self) -> bool:
        return len(self.scores) >= len(self.draw)

    def step(self) -> dict[str, float]:
        """Score the next ``archs_per_epoch`` architectures of the draw."""
        batch = self.draw[len(self.scores):len(self.scores) + self.cfg.archs_per_epoch]
        values = [float(v) for v in self._fitness(list(batch))] if batch else []
        if len(values) != len(batch) or not all(map(math.isfinite, values)):
            raise ValueError(f"random search: fitness gave {values} for {len(batch)} architectures; "
                             "expected one finite number each")
        self.scores.update(zip(batch, values))
        metrics = {"best_fitness": self.best()[1], "mean_fitness": float(np.mean(list(self.scores.values()))),
                   "evaluated": len(self.scores), "new": len(batch)}
        self.history.append(metrics)
        return dict(metrics)

    def ranked(self) -> list[tuple[Arch, float]]:
        """Every scored architecture, best first (ties: the earlier draw)."""
        return sorted(self.scores.items(), key=lambda item: -item[1])

    def best(self) -> tuple[Arch, float]:
        if not self.scores:
            raise RuntimeError("random search: nothing scored yet; call step() first")
        return self.ranked()[0]

    def state_dict(self) -> dict[str, Any]:
        return {"draw": [list(a) for a in self.draw], "scores": [[list(a), v] for a, v in self.scores.items()],
                "history": [dict(h) for h in self.history]}

    def load_state_dict(self, state: dict[str, Any], source: str) -> None:
        try:
            draw = [self.space.validate(a) for a in state["draw"]]
            scores = {self.space.validate(a): float(v) for a, v in state["scores"]}
            history = [dict(h) for h in state["history"]]
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{source}: random search state is malformed: {err!r}") from None
        if draw != self.draw:
            raise CheckpointError(f"{source}: random search drew other architectures (another seed or settings)")
        self.scores, self.history = scores, history


@register_method(KEY)
class RandomSearchMethod(FrozenSuperNetMethod):
    """Random architectures scored with inherited weights; the best wins (see the module docstring)."""

    settings_key = KEY
    Settings = RandomSearchConfig

    @classmethod
    def check(cls, cfg: SearchConfig, space: SearchSpace, input_shape: Sequence[int] | None,
              num_classes: int) -> None:
        if cfg.random_search.num_archs > space.size:
            raise ConfigError(f"search.{KEY}.num_archs: {cfg.random_search.num_archs} is more than the "
                              f"{space.size} architectures of {space.name}")

    def __init__(self, ctx: SearchContext) -> None:
        super().__init__(ctx)
        space, shape, classes = ctx.space, ctx.input_shape, ctx.num_classes
        self.search = RandomSearch(space, self._fitness, self.settings, seed=ctx.seed,
                                   cost=lambda arch: space.cost(arch, shape, classes).flops_m)
        self.restore_frozen()

    @property
    def num_epochs(self) -> int:
        return self.search.num_steps

    def step(self, batches: StepBatches) -> dict[str, float]:
        return self.search.step()

    def current(self) -> Arch:
        return self.search.best()[0] if self.search.scores else self.search.draw[0]

    def top_candidates(self, k: int) -> list[Arch]:
        """The k best scored architectures (the final choice first)."""
        return [arch for arch, _ in self.search.ranked()[:k]] or [self.current()]

    def known_valid_accuracy(self, arch: Arch) -> float | None:
        return self.search.scores.get(tuple(arch))

    def details(self, arch: Arch) -> dict[str, Any]:
        return {KEY: to_dict(self.settings), "evaluated": len(self.search.scores)}

    def trajectory(self) -> pd.DataFrame:
        """Per epoch: best and mean score so far, architectures scored."""
        return pd.DataFrame(self.search.history)

    def state_dict(self) -> dict[str, Any]:
        return {KEY: self.search.state_dict()}

    def load_state_dict(self, state: dict[str, Any], source: str) -> None:
        if KEY not in state:
            raise CheckpointError(f"{source} is incomplete: missing {KEY!r}")
        self.search.load_state_dict(state[KEY], source)
