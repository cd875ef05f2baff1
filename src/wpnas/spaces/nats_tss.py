"""NATS-Bench topology space (TSS) = the NAS-Bench-201 cell.

A cell is a DAG of 4 nodes; each of the 6 edges (j <- i, i < j) carries one of 5 ops.
The macro skeleton is the official one: stem, three stages of N cells separated by
residual reduction blocks, BN-ReLU, global pooling, linear classifier.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from wpnas.config import from_dict, to_dict
from wpnas.errors import ArchitectureError, ConfigError
from wpnas.spaces.nats_skeleton import check_build_args, check_input_shape, check_num_classes, plan_cost, tss_plan
from wpnas.spaces.base import Arch, Cost, Decision, SearchSpace
from wpnas.spaces.nats_network import NatsNetwork
from wpnas.spaces.nats_tss_supernet import TSSSuperNet
from wpnas.spaces.registry import register_space

#: Candidate ops in the official NAS-Bench-201 order.
TSS_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: Number of nodes in a cell (node 0 is the input, node 3 the output).
NUM_NODES = 4
#: Edges (to_node, from_node) in the order of the official string.
TSS_EDGES: tuple[tuple[int, int], ...] = tuple((j, i) for j in range(1, NUM_NODES) for i in range(j))


@dataclass(frozen=True)
class TSSOptions:
    """Macro skeleton: C channels in the first stage, N cells per stage (official: 16, 5)."""

    C: int = 16
    N: int = 5

    def __post_init__(self) -> None:
        if self.C < 1 or self.N < 1:
            raise ConfigError(f"nats_tss: C and N must be positive, got C={self.C}, N={self.N}")


def parse_cell_string(text: str) -> list[list[tuple[str, int]]]:
    """Split an official cell string into nodes of (op, input) pairs, validating the form."""
    if not isinstance(text, str):
        raise ArchitectureError(f"nats_tss: expected a cell string, got {text!r}")
    nodes = text.strip().split("+")
    if len(nodes) != NUM_NODES - 1:
        raise ArchitectureError(
            f"nats_tss: {text!r} has {len(nodes)} node groups, expected {NUM_NODES - 1} "
            "separated by '+' as in '|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...~0|...~1|...~2|'"
        )
    parsed = []
    for j, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")):
            raise ArchitectureError(f"nats_tss: node group {node!r} of {text!r} must start and end with '|'")
        items = [x for x in node[1:-1].split("|")]
        if len(items) != j:
            raise ArchitectureError(
                f"nats_tss: node {j} in {text!r} has {len(items)} edges, expected {j} (one per earlier node)"
            )
        edges = []
        for item in items:
            op, sep, src = item.partition("~")
            if not sep or not src.isdigit():
                raise ArchitectureError(f"nats_tss: edge {item!r} in {text!r} is not of the form 'op~k'")
            edges.append((op, int(src)))
        parsed.append(edges)
    return parsed


@register_space("nats_tss")
class NatsTSS(SearchSpace):
    """6 edge decisions x 5 ops = 15,625 cells."""

    def __init__(self, **options: Any) -> None:
        self.opts: TSSOptions = from_dict(TSSOptions, options, where="space.options (nats_tss)")
        super().__init__([Decision(f"{j}<-{i}", TSS_OPS) for j, i in TSS_EDGES])

    def options(self) -> dict[str, Any]:
        return to_dict(self.opts)

    def to_string(self, arch: Iterable[int]) -> str:
        arch = self.validate(arch)
        groups: list[str] = []
        pos = 0
        for j in range(1, NUM_NODES):
            items = []
            for i in range(j):
                items.append(f"{TSS_OPS[arch[pos]]}~{i}")
                pos += 1
            groups.append("|" + "|".join(items) + "|")
        return "+".join(groups)

    def from_string(self, text: str) -> Arch:
        arch = []
        for j, edges in enumerate(parse_cell_string(text), start=1):
            for expected_src, (op, src) in enumerate(edges):
                if src != expected_src:
                    raise ArchitectureError(
                        f"nats_tss: edge '{op}~{src}' of node {j} in {text!r} should read from node {expected_src}"
                    )
                if op not in TSS_OPS:
                    raise ArchitectureError(
                        f"nats_tss: unknown op {op!r} in {text!r}; expected one of {list(TSS_OPS)}"
                    )
                arch.append(TSS_OPS.index(op))
        return tuple(arch)

    def decision_adjacency(self) -> np.ndarray:
        """Line graph of the cell: edge (j<-i) feeds every edge leaving node j."""
        n = len(TSS_EDGES)
        adj = np.zeros((n, n), dtype=np.float32)
        for a, (j, _) in enumerate(TSS_EDGES):
            for b, (_, i2) in enumerate(TSS_EDGES):
                if i2 == j:
                    adj[a, b] = 1.0
        return adj

    # -- networks and cost -------------------------------------------------------------
    def cell_ops(self, arch: Iterable[int] | str) -> tuple[str, ...]:
        """Op name per edge, in the order of ``TSS_EDGES``."""
        return tuple(TSS_OPS[a] for a in self.parse(arch))

    def cost(
        self, arch: Iterable[int] | str, input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10
    ) -> Cost:
        """Exact NATS-Bench FLOPs/params (millions), computed analytically (no network is built)."""
        arch = self.parse(arch)
        c, h, w = check_input_shape(input_shape, 2, "nats_tss cost")
        num_classes = check_num_classes(num_classes, "nats_tss cost")
        return _tss_cost(self.opts.C, self.opts.N, arch, c, h, w, num_classes)

    def build_supernet(self, in_channels: int = 3, num_classes: int = 10):
        """:class:`~wpnas.spaces.nats_tss_supernet.TSSSuperNet`: one shared module per (cell, edge, op)."""
        in_channels, num_classes = check_build_args(in_channels, num_classes, "nats_tss build_supernet")
        return TSSSuperNet(self, in_channels, num_classes)

    def build_network(self, arch: Iterable[int] | str, in_channels: int = 3, num_classes: int = 10):
        """The official NAS-Bench-201 ``TinyNetwork`` of ``arch`` (C, N from the options)."""
        ops = self.cell_ops(arch)
        in_channels, num_classes = check_build_args(in_channels, num_classes, "nats_tss build_network")
        return NatsNetwork(in_channels, self.opts.C, tss_plan(self.opts.C, self.opts.N), ops, num_classes)


@lru_cache(maxsize=1 << 17)
def _tss_cost(C: int, N: int, arch: Arch, c: int, h: int, w: int, num_classes: int) -> Cost:
    ops = tuple(TSS_OPS[a] for a in arch)
    flops, params = plan_cost(c, C, tss_plan(C, N), ops, h, w, num_classes)
    return Cost(flops_m=flops / 1e6, params_m=params / 1e6)
