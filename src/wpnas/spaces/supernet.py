"""The SuperNet contract shared by every space.

A SuperNet holds one shared set of weights for the whole space. ``forward(x, arch,
offsets=None)`` runs only the path of ``arch``. ``offsets`` are the weakly-weight-sharing
multipliers of paper Section 3.3: a tensor of shape (L, K, K) (L = number of decisions,
K = ``space.offset_kernel``, 5 unless a space has larger kernels); the convolution kernels governed by decision l are multiplied
by the top-left crop of ``offsets[l]`` (a 3x3 kernel uses ``offsets[l, :3, :3]``, a 1x1
kernel ``offsets[l, :1, :1]``), broadcast over channels. ``offsets=None`` is plain weight
sharing and equals offsets of all ones.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn as nn

from wpnas.errors import CheckpointError, ConfigError
from wpnas.nn.ops import OFFSET_KERNEL
from wpnas.nn.paths import PathGroups, in_flight
from wpnas.spaces.base import SearchSpace

__all__ = ["OFFSET_KERNEL", "SuperNet", "check_description", "check_offsets", "describe_supernet"]


def check_offsets(offsets: torch.Tensor | None, space: SearchSpace, where: str) -> None:
    """Offsets must be None or a float tensor of shape (L, K, K), K = ``space.offset_kernel``."""
    if offsets is None:
        return
    expected = (space.num_decisions, space.offset_kernel, space.offset_kernel)
    if not isinstance(offsets, torch.Tensor) or tuple(offsets.shape) != expected:
        got = tuple(offsets.shape) if isinstance(offsets, torch.Tensor) else type(offsets).__name__
        raise ConfigError(f"{where}: offsets must have shape {expected} (decisions, K, K), got {got}")
    if not offsets.is_floating_point():
        raise ConfigError(f"{where}: offsets must be a floating-point tensor, got {offsets.dtype}")


def describe_supernet(space: SearchSpace, in_channels: int, num_classes: int) -> dict[str, Any]:
    """The description a SuperNet of ``space`` for this data has (stored in every SuperNet checkpoint)."""
    return {
        "space": space.name,
        "options": space.options(),
        "in_channels": int(in_channels),
        "num_classes": int(num_classes),
    }


def check_description(described: dict[str, Any], expected: dict[str, Any], source: str = "checkpoint") -> None:
    """Raise ``CheckpointError`` naming every field where a checkpoint's description differs from ``expected``."""
    diffs = [
        f"{k}: checkpoint has {described.get(k)!r}, expected {v!r}" for k, v in expected.items() if described.get(k) != v
    ]
    if diffs:
        raise CheckpointError(f"{source} was written for another space or configuration: " + "; ".join(diffs))


class SuperNet(nn.Module):
    """Base class: stores the space and the data shape it was built for."""

    def __init__(self, space: SearchSpace, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.space = space
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)

    @abstractmethod
    def forward(self, x: torch.Tensor, arch: Iterable[int], offsets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of ``arch`` on ``x`` using the shared weights (times ``offsets``)."""

    @abstractmethod
    def extract(self, arch: Iterable[int]) -> dict[str, torch.Tensor]:
        """State dict for ``space.build_network(arch, ...)`` inheriting the shared weights.

        ``load_state_dict(strict=True)`` of the stand-alone network accepts it, and the
        stand-alone network then computes the same function as ``forward(x, arch)``.
        """

    #: Does :meth:`forward_paths` run several paths in one pass (else it refuses)?
    paths_in_flight: ClassVar[bool] = False

    def forward_paths(
        self,
        x: torch.Tensor,
        archs: Sequence[Iterable[int]],
        offsets: torch.Tensor | None = None,
        groups: PathGroups | None = None,
    ) -> torch.Tensor:
        """Logits of P paths at once, without gradients (:mod:`wpnas.nn.paths`).

        ``x`` holds P blocks of B images, path-major (block k feeds ``archs[k]``; stack one
        batch P times to score every path on it); ``offsets`` is None or (P, L, K, K), one
        set per path. Returns (P*B, classes) logits, block k equal (up to floating-point
        noise) to ``forward(block_k, archs[k], offsets[k])`` run alone in the same mode.
        ``groups`` is the session holding per-path BN recalibration (one is made when
        omitted). Spaces whose ``paths_in_flight`` is False raise ``NotImplementedError``.
        """
        if not self.paths_in_flight:
            raise NotImplementedError(f"{self.space.name}: no forward of several paths in flight")
        archs = [self.space.parse(a) for a in archs]
        self.check_batch(x)
        groups = self.check_paths(x, archs, offsets, groups)
        with in_flight(groups):
            return self.run_paths(x, archs, offsets, groups)

    def check_batch(self, x: torch.Tensor) -> None:
        """Reject an input batch this SuperNet cannot run, naming the bad shape (default: accept)."""

    def run_paths(self, x: torch.Tensor, archs: list[tuple[int, ...]], offsets: torch.Tensor | None,
                  groups: PathGroups) -> torch.Tensor:
        """The body of :meth:`forward_paths` (checked arguments, session active); spaces with
        ``paths_in_flight`` implement it."""
        raise NotImplementedError(f"{self.space.name}: no forward of several paths in flight")

    def check_paths(self, x: torch.Tensor, archs: Sequence[Any], offsets: torch.Tensor | None,
                    groups: PathGroups | None) -> PathGroups:
        """Validate a :meth:`forward_paths` call; the session it runs in."""
        count = len(archs)
        if count < 1 or x.shape[0] % count:
            raise ConfigError(f"{self.space.name}: a batch of {x.shape[0]} is not {count} equal path blocks")
        if offsets is not None:
            expected = (count, self.space.num_decisions, self.space.offset_kernel, self.space.offset_kernel)
            if tuple(offsets.shape) != expected:
                raise ConfigError(f"{self.space.name}: per-path offsets must have shape {expected}, "
                                  f"got {tuple(offsets.shape)}")
        if groups is None:
            return PathGroups(count)
        if groups.num_paths != count:
            raise ConfigError(f"{self.space.name}: a session of {groups.num_paths} paths got {count} architectures")
        return groups

    def candidate_ops(self) -> list[tuple[str, nn.Module]]:
        """(name, module) of every candidate-op module whose input shape is the same on every
        path (e.g. one op of one edge of one cell): what per-op CUDA graphs may capture
        (:func:`wpnas.train.fast.graph_candidate_ops`). Default: none (a space whose shapes
        change with the path, such as channel slicing, has none)."""
        return []

    def describe(self) -> dict[str, Any]:
        """What a checkpoint must match to be loaded into this SuperNet."""
        return describe_supernet(self.space, self.in_channels, self.num_classes)

    def check_compatible(self, described: dict[str, Any], source: str = "checkpoint") -> None:
        """Raise ``CheckpointError`` when ``described`` (from a checkpoint) differs from us."""
        check_description(described, self.describe(), source)

    def inherit(self, arch: Iterable[int]) -> nn.Module:
        """Stand-alone network of ``arch`` loaded with the shared weights (same device)."""
        arch = self.space.validate(arch)
        net = self.space.build_network(arch, self.in_channels, self.num_classes)
        net.load_state_dict(self.extract(arch), strict=True)
        device = next(self.parameters()).device
        return net.to(device)
