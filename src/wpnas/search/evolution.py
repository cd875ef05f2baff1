"""SPOS evolutionary search (Guo et al., 2020, Section 3.4), generic over any search space.

Each generation keeps the ``top_k`` fittest architectures of the population as parents,
makes children by crossover and mutation (unseen ones within the optional FLOPs bound
only), evaluates the children in one batched ``fitness`` call and keeps the best
``population`` of parents and children. Fitness is higher-is-better (e.g. validation
accuracy of a SuperNet path) and no architecture is ever evaluated twice.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from wpnas.errors import CheckpointError, ConfigError
from wpnas.seeds import stream_seed
from wpnas.spaces.base import ENUMERATION_LIMIT, Arch, SearchSpace

__all__ = ["Evolution", "EvolutionConfig", "check_evolution", "evolve"]

logger = logging.getLogger(__name__)

Fitness = Callable[[list[Arch]], Sequence[float]]
CostFn = Callable[[Arch], float]

#: Architectures sampled for the smallest FLOPs of a space too large to enumerate.
FLOPS_SAMPLE = 2_000


@dataclass(frozen=True)
class EvolutionConfig:
    """Evolution settings (``evolution:`` in the parameters); defaults are the SPOS ones.

    ``max_flops_m`` bounds the FLOPs (millions) of every candidate (null: no bound).
    ``max_tries`` is how many candidates (already evaluated, or over the bound) may be
    rejected per batch (initial population, crossover children, mutation children)
    before the generation goes on with fewer.
    """

    population: int = 50
    generations: int = 20
    top_k: int = 10
    num_crossover: int = 25
    num_mutation: int = 25
    mutation_prob: float = 0.1
    max_flops_m: float | None = None
    max_tries: int = 1000

    def __post_init__(self) -> None:
        for name in ("population", "generations", "top_k", "max_tries"):
            _check_int(name, getattr(self, name), 1)
        for name in ("num_crossover", "num_mutation"):
            _check_int(name, getattr(self, name), 0)
        if self.top_k > self.population:
            raise ConfigError(
                f"evolution.top_k: {self.top_k} parents is more than evolution.population {self.population}; "
                "expected top_k <= population"
            )
        if self.num_crossover + self.num_mutation < 1:
            raise ConfigError(
                f"evolution.num_crossover: {self.num_crossover} and evolution.num_mutation: {self.num_mutation} "
                "make no children; expected num_crossover + num_mutation >= 1"
            )
        if self.num_crossover > 0 and self.top_k < 2:
            raise ConfigError(
                f"evolution.top_k: {self.top_k} parent cannot cross over; expected top_k >= 2 "
                "or evolution.num_crossover 0"
            )
        if not _is_number(self.mutation_prob) or not 0.0 < self.mutation_prob <= 1.0:
            raise ConfigError(f"evolution.mutation_prob: {self.mutation_prob!r}; expected 0 < mutation_prob <= 1")
        if self.max_flops_m is not None and (not _is_number(self.max_flops_m) or not self.max_flops_m > 0):
            raise ConfigError(f"evolution.max_flops_m: {self.max_flops_m!r}; expected a number > 0 or null")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"evolution.{name}: {value!r}; expected an integer >= {minimum}")


def check_evolution(space: SearchSpace, cfg: EvolutionConfig, cost: CostFn | None = None, seed: int = 0) -> None:
    """Raise ``ConfigError`` (before any training) if ``cfg`` cannot run on ``space``.

    The population must fit in the space, and at least one architecture must meet the
    FLOPs bound: the space is enumerated when it is small enough, else ``FLOPS_SAMPLE``
    seeded samples are checked. Warns when fewer than ``population`` meet the bound (the
    initial population is then smaller).
    """
    if cfg.population > space.size:
        raise ConfigError(
            f"evolution.population: {cfg.population} is more than the {space.size} architectures of "
            f"{space.name}; expected at most {space.size}"
        )
    if cfg.max_flops_m is None:
        return
    if cost is None:
        raise ConfigError(f"evolution.max_flops_m: {cfg.max_flops_m} is set but no cost function was given")
    enumerable = space.size <= ENUMERATION_LIMIT
    if enumerable:
        archs: Iterator[Arch] | list[Arch] = space.enumerate()
        where = f"of the {space.size} architectures of {space.name}"
    else:
        rng = np.random.default_rng(stream_seed(seed, "evolution"))
        archs = space.sample(rng, FLOPS_SAMPLE)
        where = f"in a seeded sample of {FLOPS_SAMPLE:,} of the {space.size} architectures of {space.name}"
    meeting, smallest = 0, math.inf
    for arch in archs:
        flops = float(cost(arch))
        smallest = min(smallest, flops)
        if flops <= cfg.max_flops_m:
            meeting += 1
            if meeting >= cfg.population:
                return
    if meeting == 0:
        raise ConfigError(
            f"evolution.max_flops_m: no architecture meets {cfg.max_flops_m} MFLOPs; the smallest {where} "
            f"has {smallest:.6g} MFLOPs; expected a bound >= {smallest:.6g}"
        )
    if enumerable:
        logger.warning(
            "evolution: only %d architectures of %s meet max_flops_m %s; the initial population has %d, not %d",
            meeting, space.name, cfg.max_flops_m, meeting, cfg.population,
        )


class Evolution:
    """SPOS evolutionary search; call :meth:`step` once per generation (or use :func:`evolve`).

    ``fitness`` maps a batch of new architectures to their fitness (higher is better);
    ``cost`` maps an architecture to its FLOPs in millions (needed with ``max_flops_m``);
    ``latency`` to its milliseconds (a latency table), needed with ``max_latency_ms``: no
    candidate over either bound is ever evaluated, so none is ever the result.
    """

    def __init__(
        self,
        space: SearchSpace,
        fitness: Fitness,
        cfg: EvolutionConfig,
        seed: int = 0,
        cost: CostFn | None = None,
        latency: CostFn | None = None,
        max_latency_ms: float | None = None,
    ) -> None:
        check_evolution(space, cfg, cost, seed)
        if max_latency_ms is not None and latency is None:
            raise ConfigError(f"evolution: a latency bound of {max_latency_ms} ms needs a latency function (a table)")
        self.space = space
        self.cfg = cfg
        self._fitness = fitness
        self._cost = cost
        self._latency = latency
        self.max_latency_ms = max_latency_ms
        self._rng = np.random.default_rng(stream_seed(seed, "evolution"))
        self._cache: dict[Arch, float] = {}
        self._population: list[tuple[Arch, float]] = []
        self._generation = 0
        self._history: list[dict[str, float]] = []

    # -- state ---------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        """Completed generations (the initial population is the first)."""
        return self._generation

    @property
    def done(self) -> bool:
        return self._generation >= self.cfg.generations

    @property
    def population(self) -> list[tuple[Arch, float]]:
        """The current population as (arch, fitness), fittest first."""
        return list(self._population)

    @property
    def history(self) -> list[dict[str, float]]:
        return [dict(h) for h in self._history]

    @property
    def evaluated(self) -> dict[Arch, float]:
        """Every architecture evaluated so far, in evaluation order."""
        return dict(self._cache)

    def best(self) -> tuple[Arch, float]:
        """The fittest architecture ever evaluated (ties: the first found)."""
        if not self._cache:
            raise RuntimeError("evolution: nothing evaluated yet; call step() first")
        return max(self._cache.items(), key=lambda item: item[1])

    # -- one generation --------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """Run one generation and return its metrics."""
        if self._generation == 0:
            new = self._initial_population()
        else:
            parents = [arch for arch, _ in self._population[: self.cfg.top_k]]
            taken: set[Arch] = set()
            new = self._collect(self.cfg.num_crossover if len(parents) >= 2 else 0,
                                lambda: self._cross(parents), taken, "crossover")
            new += self._collect(self.cfg.num_mutation, lambda: self._mutate(parents), taken, "mutation")
        # Elitist: the best of parents and children; a stable sort keeps the older on ties.
        merged = self._population + self._evaluate(new)
        self._population = sorted(merged, key=lambda item: -item[1])[: self.cfg.population]
        if not self._population:  # only possible when sampling a space too large to enumerate
            raise ConfigError(
                f"evolution: no architecture within max_flops_m {self.cfg.max_flops_m} MFLOPs and max_latency_ms "
                f"{self.max_latency_ms} found in {self.cfg.max_tries} tries; expected a larger bound or "
                "evolution.max_tries"
            )
        self._generation += 1
        metrics = {
            "generation": self._generation,
            "best_fitness": self._population[0][1],
            "mean_fitness": float(np.mean([f for _, f in self._population])),
            "evaluated": len(self._cache),
            "new": len(new),
        }
        self._history.append(metrics)
        return dict(metrics)

    def _meets_bound(self, arch: Arch) -> bool:
        bound = self.cfg.max_flops_m
        if bound is not None and float(self._cost(arch)) > bound:  # type: ignore[misc]
            return False
        return self.max_latency_ms is None or float(self._latency(arch)) <= self.max_latency_ms  # type: ignore[misc]

    def _initial_population(self) -> list[Arch]:
        """``population`` distinct uniform architectures within the bound (fewer if the bound allows fewer)."""
        want = self.cfg.population
        if self.space.size > ENUMERATION_LIMIT or self.max_latency_ms is not None:  # a table lookup per try
            return self._collect(want, lambda: self.space.sample(self._rng), set(), "initial population")
        found: list[Arch] = []
        for index in self._rng.permutation(self.space.size):
            arch = self.space.arch_from_index(int(index))
            if self._meets_bound(arch):
                found.append(arch)
                if len(found) == want:
                    break
        return found

    def _cross(self, parents: list[Arch]) -> Arch:
        i, j = self._rng.choice(len(parents), size=2, replace=False)
        return self.space.crossover(parents[i], parents[j], self._rng)

    def _mutate(self, parents: list[Arch]) -> Arch:
        parent = parents[int(self._rng.integers(len(parents)))]
        return self.space.mutate(parent, self._rng, self.cfg.mutation_prob)

    def _collect(self, want: int, propose: Callable[[], Arch], taken: set[Arch], what: str) -> list[Arch]:
        """Up to ``want`` proposals that are new (not evaluated, not in ``taken``) and within the bound;
        adds them to ``taken``."""
        found: list[Arch] = []
        rejected = 0
        while len(found) < want and rejected < self.cfg.max_tries:
            arch = propose()
            if arch in self._cache or arch in taken or not self._meets_bound(arch):
                rejected += 1
                continue
            found.append(arch)
            taken.add(arch)
        if len(found) < want:
            logger.info(
                "evolution generation %d: %d of %d %s candidates after %d rejected tries",
                self._generation + 1, len(found), want, what, rejected,
            )
        return found

    def _evaluate(self, archs: list[Arch]) -> list[tuple[Arch, float]]:
        """Fitness of new architectures in one batched call, recorded in the cache."""
        if not archs:
            return []
        values = list(self._fitness(list(archs)))
        if len(values) != len(archs):
            raise ValueError(f"evolution: fitness returned {len(values)} values for {len(archs)} architectures")
        scored = []
        for arch, value in zip(archs, values):
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(
                    f"evolution: fitness of {self.space.to_string(arch)} is {value}; expected a finite number"
                )
            self._cache[arch] = value
            scored.append((arch, value))
        return scored

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly, as plain Python types (``weights_only`` safe)."""
        return {
            "space": self.space.name,
            "num_choices": list(self.space.num_choices),
            "generation": self._generation,
            "evaluated": [[list(arch), value] for arch, value in self._cache.items()],
            "population": [[list(arch), value] for arch, value in self._population],
            "history": self.history,
            "rng": copy.deepcopy(self._rng.bit_generator.state),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (of a run on the same space)."""
        space, choices = state.get("space"), state.get("num_choices")
        if space != self.space.name or choices != list(self.space.num_choices):
            raise CheckpointError(
                f"evolution state is for space {space!r} with choices {choices}, not "
                f"{self.space.name!r} with {list(self.space.num_choices)}"
            )
        try:
            cache = {self.space.validate(arch): float(value) for arch, value in state["evaluated"]}
            population = [(self.space.validate(arch), float(value)) for arch, value in state["population"]]
            history = [dict(h) for h in state["history"]]
            generation = int(state["generation"])
            self._rng.bit_generator.state = copy.deepcopy(state["rng"])
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"evolution state is malformed: {err!r}") from None
        self._cache, self._population, self._history, self._generation = cache, population, history, generation


def evolve(
    space: SearchSpace,
    fitness: Fitness,
    cfg: EvolutionConfig,
    seed: int = 0,
    cost: CostFn | None = None,
    latency: CostFn | None = None,
    max_latency_ms: float | None = None,
) -> Evolution:
    """Run all ``cfg.generations`` generations and return the finished :class:`Evolution`."""
    evolution = Evolution(space, fitness, cfg, seed=seed, cost=cost, latency=latency, max_latency_ms=max_latency_ms)
    while not evolution.done:
        evolution.step()
    return evolution
