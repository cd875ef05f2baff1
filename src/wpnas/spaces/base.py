"""The search-space protocol: "L decisions, each with K_l candidates" (paper Section 3.1).

Everything else in wpnas (alpha distribution, policy gradient, HyperNet, predictors,
benchmarks, reports) is written once against this protocol and never special-cases a
space. A space module implements the abstract methods; the rest is shared here.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from wpnas.cost import Cost
from wpnas.errors import ArchitectureError, ConfigError
from wpnas.nn.ops import OFFSET_KERNEL

__all__ = ["Arch", "ArchEncoding", "Cost", "Decision", "SearchSpace"]

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

Arch = tuple[int, ...]
"""An architecture: one choice index per decision, in the order of ``space.decisions``."""

#: Largest space ``enumerate()`` agrees to list.
ENUMERATION_LIMIT = 2_000_000


@dataclass(frozen=True)
class Decision:
    """One searchable decision (an edge, a layer width, ...) and its candidate choices."""

    name: str
    choices: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.choices)


@dataclass(frozen=True)
class ArchEncoding:
    """Predictor features for a batch of B architectures of one space.

    tokens:    (B, L) int64   choice index per decision.
    onehot:    (B, L, K) float32, K = the largest choice count; padded with zeros.
    ordinal:   (B, L) float32 choice position scaled to [0, 1] (meaningful where choices
               are ordered, e.g. channel counts; harmless elsewhere).
    adjacency: (L, L) float32 decision graph (i -> j when decision i feeds decision j),
               shared by the batch; GCN encoders use it.
    """

    tokens: np.ndarray
    onehot: np.ndarray
    ordinal: np.ndarray
    adjacency: np.ndarray

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def select(self, index: Sequence[int] | np.ndarray) -> ArchEncoding:
        index = np.asarray(index)
        return ArchEncoding(self.tokens[index], self.onehot[index], self.ordinal[index], self.adjacency)


class SearchSpace(ABC):
    """A configured search space. Instances are cheap; options fix the macro skeleton."""

    #: Registry name, e.g. ``"nats_tss"``.
    name: ClassVar[str]

    def __init__(self, decisions: Sequence[Decision]) -> None:
        self._decisions = tuple(decisions)
        self._sizes = tuple(d.size for d in self._decisions)

    # -- decisions -------------------------------------------------------------------
    @property
    def decisions(self) -> tuple[Decision, ...]:
        return self._decisions

    @property
    def num_decisions(self) -> int:
        return len(self._decisions)

    @property
    def num_choices(self) -> tuple[int, ...]:
        return self._sizes

    @property
    def max_choices(self) -> int:
        return max(self._sizes)

    @property
    def size(self) -> int:
        return math.prod(self._sizes)

    @property
    def offset_kernel(self) -> int:
        """K of the (K, K) weakly-weight-sharing offset per decision: at least the largest
        convolution kernel any decision governs (the HyperNet emits (L, K, K); a k x k kernel
        uses the top-left (k, k) crop). Spaces with kernels above 5 override it."""
        return OFFSET_KERNEL

    @abstractmethod
    def options(self) -> dict[str, Any]:
        """The options this space was built with (stored in checkpoints, compared on load)."""

    def describe(self) -> dict[str, Any]:
        return {"space": self.name, "options": self.options()}

    # -- architectures ---------------------------------------------------------------
    def validate(self, arch: Iterable[int]) -> Arch:
        """Return ``arch`` as a tuple of ints, or raise naming what is wrong."""
        try:
            arch = tuple(int(a) for a in arch)
        except (TypeError, ValueError):
            raise ArchitectureError(f"{self.name}: {arch!r} is not a sequence of choice indices") from None
        if len(arch) != self.num_decisions:
            raise ArchitectureError(
                f"{self.name}: architecture {arch!r} has {len(arch)} choices, expected {self.num_decisions}"
            )
        for value, decision in zip(arch, self._decisions):
            if not 0 <= value < decision.size:
                raise ArchitectureError(
                    f"{self.name}: choice {value} for decision {decision.name!r} is out of range "
                    f"0..{decision.size - 1}"
                )
        return arch

    @abstractmethod
    def to_string(self, arch: Iterable[int]) -> str:
        """Canonical human form (the official string where one exists)."""

    @abstractmethod
    def from_string(self, text: str) -> Arch:
        """Parse the canonical form; raise ``ArchitectureError`` naming the bad part."""

    def parse(self, arch: str | Iterable[int]) -> Arch:
        """Accept either a string or a choice tuple."""
        return self.from_string(arch) if isinstance(arch, str) else self.validate(arch)

    def choice_names(self, arch: Iterable[int]) -> list[str]:
        arch = self.validate(arch)
        return [d.choices[a] for d, a in zip(self._decisions, arch)]

    def sample(self, rng: np.random.Generator, n: int | None = None) -> Arch | list[Arch]:
        """Uniform sample(s) from the space."""
        count = 1 if n is None else int(n)
        cols = [rng.integers(0, k, size=count) for k in self._sizes]
        archs = [tuple(int(c[i]) for c in cols) for i in range(count)]
        return archs[0] if n is None else archs

    def sample_unique(self, rng: np.random.Generator, n: int) -> list[Arch]:
        """``n`` distinct uniform samples (without replacement)."""
        if n > self.size:
            raise ArchitectureError(f"{self.name}: cannot draw {n} distinct architectures from {self.size}")
        if n > self.size // 4 and self.size <= ENUMERATION_LIMIT:
            picks = rng.choice(self.size, size=n, replace=False)
            return [self.arch_from_index(int(i)) for i in picks]
        seen: dict[Arch, None] = {}
        while len(seen) < n:
            for arch in self.sample(rng, n - len(seen)):
                seen.setdefault(arch, None)
        return list(seen)

    def mutate(self, arch: Iterable[int], rng: np.random.Generator, prob: float) -> Arch:
        """``arch`` with each decision, with probability ``prob``, resampled uniformly among
        its other choices (a decision with one choice never changes)."""
        arch = self.validate(arch)
        if not 0.0 <= prob <= 1.0:
            raise ConfigError(f"{self.name}: mutation probability {prob!r} must be in [0, 1]")
        flips = rng.random(self.num_decisions) < prob
        out = list(arch)
        for l, (flip, k) in enumerate(zip(flips, self._sizes)):
            if flip and k > 1:
                other = int(rng.integers(0, k - 1))  # one of the k - 1 other choices
                out[l] = other + (other >= arch[l])
        return tuple(out)

    def crossover(self, a: Iterable[int], b: Iterable[int], rng: np.random.Generator) -> Arch:
        """Each decision taken from ``a`` or ``b`` with probability 1/2."""
        a, b = self.validate(a), self.validate(b)
        from_a = rng.random(self.num_decisions) < 0.5
        return tuple(x if take else y for x, y, take in zip(a, b, from_a))

    def index(self, arch: Iterable[int]) -> int:
        """Mixed-radix position of ``arch`` (last decision fastest). Not an official index."""
        arch = self.validate(arch)
        value = 0
        for a, k in zip(arch, self._sizes):
            value = value * k + a
        return value

    def arch_from_index(self, index: int) -> Arch:
        if not 0 <= index < self.size:
            raise ArchitectureError(f"{self.name}: index {index} outside 0..{self.size - 1}")
        out = []
        for k in reversed(self._sizes):
            index, r = divmod(index, k)
            out.append(r)
        return tuple(reversed(out))

    def enumerate(self) -> Iterator[Arch]:
        """Every architecture, in mixed-radix order (refuses spaces above a few million)."""
        if self.size > ENUMERATION_LIMIT:
            raise ArchitectureError(f"{self.name}: {self.size} architectures are too many to enumerate")
        return (tuple(a) for a in itertools.product(*(range(k) for k in self._sizes)))

    # -- networks and cost (implemented per space) -----------------------------------
    @abstractmethod
    def cost(
        self, arch: Iterable[int], input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10
    ) -> Cost:
        """FLOPs and parameters (millions) of the stand-alone network."""

    @abstractmethod
    def build_supernet(self, in_channels: int = 3, num_classes: int = 10) -> nn.Module:
        """A :class:`~wpnas.spaces.supernet.SuperNet`: one shared set of weights; ``forward(x, arch, offsets=None)`` runs one path."""

    @abstractmethod
    def build_network(self, arch: Iterable[int], in_channels: int = 3, num_classes: int = 10) -> nn.Module:
        """The stand-alone network of ``arch`` (its state dict matches ``SuperNet.extract``)."""

    # -- the network trained from scratch (paper step 5) ------------------------------
    def check_evaluation_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate ``evaluation.network`` (options of the network trained from scratch, e.g.
        DARTS's 20 cells x 36 channels with an auxiliary head) and return them normalised.
        Empty options mean the search skeleton (``build_network``). A space whose
        evaluation network is its search network accepts no options."""
        if options:
            raise ConfigError(
                f"evaluation.network: {self.name} trains the searched network as it is and takes no options, "
                f"got {sorted(options)}; set evaluation.network to {{}}"
            )
        return {}

    def build_evaluation_network(
        self, arch: Iterable[int], in_channels: int = 3, num_classes: int = 10,
        options: Mapping[str, Any] | None = None,
    ) -> nn.Module:
        """The network step 5 trains from scratch: ``build_network`` unless ``options`` change
        the skeleton. In training mode a network with an auxiliary head returns
        ``(logits, auxiliary_logits)``; in eval mode always the logits."""
        self.check_evaluation_options(options)
        return self.build_network(arch, in_channels, num_classes)

    def evaluation_cost(
        self, arch: Iterable[int], input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10,
        options: Mapping[str, Any] | None = None,
    ) -> Cost:
        """FLOPs and parameters of the evaluation network (inference: no auxiliary head).

        Without options this is :meth:`cost`; with options the built network is counted
        with the hook counter (:func:`wpnas.nn.flops.count_flops_params`), auxiliary-head
        parameters excluded, as DARTS reports them."""
        options = self.check_evaluation_options(options)
        if not options:
            return self.cost(arch, input_shape, num_classes)
        from wpnas.nn.flops import count_flops_params

        net = self.build_evaluation_network(arch, int(input_shape[0]), num_classes, options)
        return count_flops_params(net, input_shape, exclude_prefixes=("auxiliary",))

    # -- predictor features ----------------------------------------------------------
    def decision_adjacency(self) -> np.ndarray:
        """Decision graph for GCN encoders; default: a chain (decision l feeds l+1)."""
        n = self.num_decisions
        adj = np.zeros((n, n), dtype=np.float32)
        for i in range(n - 1):
            adj[i, i + 1] = 1.0
        return adj

    def encode(self, archs: Iterable[Iterable[int] | str]) -> ArchEncoding:
        """Features for a batch of architectures (strings or choice tuples)."""
        parsed = [self.parse(a) for a in archs]
        tokens = np.asarray(parsed, dtype=np.int64).reshape(len(parsed), self.num_decisions)
        return self.encode_tokens(tokens)

    def encode_tokens(self, tokens: np.ndarray) -> ArchEncoding:
        """Vectorised :meth:`encode` for an (B, L) array of already valid choice indices."""
        tokens = np.asarray(tokens, dtype=np.int64)
        b, n = tokens.shape
        onehot = np.zeros((b, n, self.max_choices), dtype=np.float32)
        rows = np.arange(b)[:, None]
        cols = np.arange(n)[None, :]
        onehot[rows, cols, tokens] = 1.0
        denom = np.maximum(np.asarray(self._sizes, dtype=np.float32) - 1.0, 1.0)
        ordinal = tokens.astype(np.float32) / denom[None, :]
        return ArchEncoding(tokens, onehot, ordinal, self.decision_adjacency())
