"""SPOS (Guo et al., 2020) as a search method: evolution over a uniformly trained SuperNet.

The SuperNet comes from WarmUp (uniform single-path sampling, with or without landmark
regularisation); this method never changes its weights. Each epoch is one generation of
:class:`~wpnas.search.evolution.Evolution`; the fitness of an architecture is its
inherited-weight validation accuracy after BN recalibration (the runner's evaluation:
``search.eval_valid_limit`` images, ``search.calib_batches`` calibration batches, a fixed
draw per architecture), cached so nothing is evaluated twice. ``evolution.max_flops_m``
bounds the FLOPs of every candidate. The final architecture is the best one evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from wpnas.config import qualify, to_dict
from wpnas.errors import CheckpointError, ConfigError
from wpnas.search.config import SearchConfig
from wpnas.search.evolution import Evolution, EvolutionConfig, check_evolution
from wpnas.search.methods import FrozenSuperNetMethod, SearchContext, StepBatches
from wpnas.search.registry import register_method
from wpnas.spaces.base import Arch, SearchSpace


@register_method("spos_evolution")
class SPOSEvolution(FrozenSuperNetMethod):
    """Evolutionary search on inherited-weight validation accuracy (SPOS's second stage)."""

    settings_key = "evolution"
    Settings = EvolutionConfig
    bounds_latency = True  # every candidate of the evolution is within the bound

    @classmethod
    def check(cls, cfg: SearchConfig, space: SearchSpace, input_shape: Sequence[int] | None,
              num_classes: int) -> None:
        """The population against the space, the FLOPs bound against its smallest architecture."""
        if input_shape is None:
            return
        try:
            check_evolution(space, cfg.evolution, cost=lambda a: space.cost(a, input_shape, num_classes).flops_m)
        except ConfigError as err:  # the check names "evolution.<key>"; the user writes search.evolution.<key>
            raise ConfigError(qualify(str(err), "search", [cls.settings_key])) from None

    def __init__(self, ctx: SearchContext) -> None:
        super().__init__(ctx)
        self.cfg = self.settings
        space, shape, classes = ctx.space, ctx.input_shape, ctx.num_classes

        def cost(arch: Arch) -> float:
            return space.cost(arch, shape, classes).flops_m

        self.evolution = Evolution(space, self._fitness, self.cfg, seed=ctx.seed, cost=cost,  # checks the bound
                                   latency=ctx.latency, max_latency_ms=ctx.cfg.max_latency_ms)
        self.restore_frozen()

    @property
    def num_epochs(self) -> int:
        return self.cfg.generations

    def step(self, batches: StepBatches) -> dict[str, float]:
        metrics = self.evolution.step()
        return {k: float(v) for k, v in metrics.items() if k != "generation"}

    def current(self) -> Arch:
        return self.evolution.best()[0]

    def top_candidates(self, k: int) -> list[Arch]:
        """The k best evaluated architectures by fitness (the final choice first)."""
        best = self.current()
        ranked = sorted(self.evolution.evaluated.items(), key=lambda item: -item[1])
        return ([best] + [arch for arch, _ in ranked if arch != best])[:k]

    def known_valid_accuracy(self, arch: Arch) -> float | None:
        fitness = self.evolution.evaluated.get(tuple(arch))
        return None if fitness is None else float(fitness)

    def details(self, arch: Arch) -> dict[str, Any]:
        return {"evolution": to_dict(self.cfg), "evaluated": len(self.evolution.evaluated)}

    def trajectory(self) -> pd.DataFrame:
        """Per generation: best and mean fitness of the population, evaluations so far."""
        return pd.DataFrame(self.evolution.history)

    def state_dict(self) -> dict[str, Any]:
        return {"evolution": self.evolution.state_dict()}

    def load_state_dict(self, state: dict[str, Any], source: str) -> None:
        if "evolution" not in state:
            raise CheckpointError(f"{source} is incomplete: missing 'evolution'")
        self.evolution.load_state_dict(state["evolution"])
