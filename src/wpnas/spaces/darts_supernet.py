"""Weight-sharing SuperNet of the DARTS space.

One module per (cell, edge j -> i, op) for the 14 edges of a cell (i = 2..5, j < i) and
the 7 ops other than 'none', shared by every architecture that uses that op on that edge,
whichever parent pair selects the edge. Each cell also has its own preprocessing of the
two inputs, as in the stand-alone network. A path runs, per inner node, only its two
chosen edges with their chosen ops ('none' gives zeros, no module).

Weakly weight sharing: ``offsets[l]`` of the op decision l (``op_a`` / ``op_b`` of a node,
see :mod:`wpnas.spaces.darts`) multiplies every kernel of the op chosen by that decision,
in every cell of that type (normal or reduce): a depthwise k x k kernel by the top-left
(k, k) crop, a 1x1 conv (pointwise, factorized reduce) by the top-left entry. The
offsets of the parent-selection decisions govern no kernel and are ignored. Stem,
preprocessing and classifier are shared by every architecture and never scaled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from wpnas.nn.ops import DynamicLinear, Stem
from wpnas.nn.paths import PathGroups
from wpnas.spaces.base import SearchSpace
from wpnas.spaces.darts_network import (
    DARTS_OPS,
    CONCAT,
    INNER_NODES,
    REDUCTIONS,
    darts_plan,
    make_darts_op,
    make_preprocess,
    run_cell,
)
from wpnas.spaces.nats_network import check_input, extract_state
from wpnas.spaces.supernet import SuperNet, check_offsets

#: Ops that hold a module in the SuperNet ('none' is computed without one).
SHARED_OPS: tuple[str, ...] = tuple(name for name in DARTS_OPS if name != "none")


def edge_key(node: int, src: int) -> str:
    return f"{node}_{src}"


class SharedCell(nn.Module):
    """Every non-'none' op on every edge of one cell, plus the cell's input preprocessing."""

    def __init__(self, spec) -> None:
        super().__init__()
        self.spec = spec
        self.preprocess0, self.preprocess1 = make_preprocess(spec)
        self.edges = nn.ModuleDict(
            {
                edge_key(i, j): nn.ModuleDict(
                    {name: make_darts_op(name, spec.c, 2 if spec.reduction and j < 2 else 1) for name in SHARED_OPS}
                )
                for i in INNER_NODES
                for j in range(i)
            }
        )
        self._zero = {s: make_darts_op("none", spec.c, s) for s in (1, 2)}

    def op(self, node: int, src: int, name: str):
        if name == "none":
            return self._zero[2 if self.spec.reduction and src < 2 else 1]
        return self.edges[edge_key(node, src)][name]

    def forward(self, s0, s1, genes, offsets=None):
        s0, s1 = self.preprocess0(s0), self.preprocess1(s1)
        nodes = [(a, b, self.op(i, a, op_a), self.op(i, b, op_b)) for i, (a, b, op_a, op_b) in zip(INNER_NODES, genes)]
        return run_cell(s0, s1, nodes, offsets)

    def forward_paths(self, s0: torch.Tensor, s1: torch.Tensor, path_genes: Sequence[Sequence[tuple]],
                      decisions: Callable[[int, int], int], offsets: torch.Tensor | None,
                      groups: PathGroups) -> torch.Tensor:
        """:meth:`forward` for several paths in flight (path-major blocks; see
        :mod:`wpnas.nn.paths`). Per inner node, every (input, op) some path chose runs once on
        the blocks of the paths that chose it, whichever slot chose it; one gather per slot
        then gives each path op_a(state a) + op_b(state b), as :func:`run_cell` adds them.
        ``decisions(node position, slot)`` is the op decision whose offsets a slot takes."""
        s0, s1 = self.preprocess0(s0), self.preprocess1(s1)
        count = len(path_genes)
        everyone = list(range(count))
        flat = None if offsets is None else offsets.flatten(0, 1)  # (P * L, K, K)
        states = [s0, s1]
        for n, i in enumerate(INNER_NODES):
            chosen: dict[tuple[int, str], list[tuple[int, int]]] = {}
            for k, genes in enumerate(path_genes):
                a, b, op_a, op_b = genes[n]
                chosen.setdefault((a, op_a), []).append((k, 0))
                chosen.setdefault((b, op_b), []).append((k, 1))
            outputs, position = [], {}
            for (src, name), members in chosen.items():
                rows = [k for k, _ in members]
                source = states[src]
                if rows != everyone:
                    index = groups.index(rows, source.device)
                    source = source.unflatten(0, (count, -1)).index_select(0, index).flatten(0, 1)
                offset = None
                if flat is not None:
                    picks = [k * offsets.shape[1] + decisions(n, slot) for k, slot in members]
                    offset = flat.index_select(0, groups.index(picks, flat.device))
                with groups.serving(rows):
                    outputs.append(self.op(i, src, name)(source, offset))
                for member in members:
                    position[member] = len(position)
            merged = torch.cat(outputs).unflatten(0, (2 * count, -1))
            slot_a = merged.index_select(0, groups.index([position[(k, 0)] for k in everyone], merged.device))
            slot_b = merged.index_select(0, groups.index([position[(k, 1)] for k in everyone], merged.device))
            states.append((slot_a + slot_b).flatten(0, 1))
        return torch.cat([states[i] for i in CONCAT], dim=1)


class DartsSuperNet(SuperNet):
    """SuperNet of :class:`~wpnas.spaces.darts.Darts` (C, layers, stem_multiplier from the space options)."""

    space: SearchSpace  # a Darts space
    #: Paths differ in conv shapes (op kinds per edge).
    dynamic_shapes: ClassVar[bool] = True
    paths_in_flight: ClassVar[bool] = True

    def __init__(self, space: SearchSpace, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__(space, in_channels, num_classes)
        opts = space.opts
        plan = darts_plan(opts.C, opts.layers, opts.stem_multiplier)
        self.stem = Stem(in_channels, opts.stem_multiplier * opts.C)
        self.cells = nn.ModuleList(SharedCell(spec) for spec in plan)
        self.classifier = DynamicLinear(plan[-1].c_out, num_classes)

    def forward(
        self, x: torch.Tensor, arch: Iterable[int] | str, offsets: torch.Tensor | None = None
    ) -> torch.Tensor:
        arch = self.space.parse(arch)
        self.check_batch(x)
        check_offsets(offsets, self.space, "darts supernet")
        genes = self.space.genes(arch)
        per_type = None
        if offsets is not None:
            per_type = [
                [(offsets[self.space.op_decision(t, n, 0)], offsets[self.space.op_decision(t, n, 1)]) for n in range(4)]
                for t in range(2)
            ]
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            t = int(cell.spec.reduction)
            s0, s1 = s1, cell(s0, s1, genes[t], None if per_type is None else per_type[t])
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))

    def check_batch(self, x: torch.Tensor) -> None:
        check_input(x, self.in_channels, REDUCTIONS, "darts supernet")

    def run_paths(self, x: torch.Tensor, archs: list[tuple[int, ...]], offsets: torch.Tensor | None,
                  groups: PathGroups) -> torch.Tensor:
        genes = [self.space.genes(a) for a in archs]
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            t = int(cell.spec.reduction)
            s0, s1 = s1, cell.forward_paths(s0, s1, [g[t] for g in genes],
                                            lambda n, slot, t=t: self.space.op_decision(t, n, slot), offsets, groups)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))

    def candidate_ops(self) -> list[tuple[str, nn.Module]]:
        """Every op of every edge of every cell (an edge's input is its cell's preprocessed state)."""
        return [(f"cells.{k}.edges.{key}.{name}", op)
                for k, cell in enumerate(self.cells) for key, edge in cell.edges.items() for name, op in edge.items()]

    def extract(
        self, arch: Iterable[int] | str, offsets: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """State dict of ``space.build_network(arch)``; with ``offsets``, the effective kernels."""
        arch = self.space.parse(arch)
        check_offsets(offsets, self.space, "darts extract")
        genes = self.space.genes(arch)
        with torch.device("meta"):
            template = self.space.build_network(arch, self.in_channels, self.num_classes)
        reduction = [cell.spec.reduction for cell in self.cells]

        def locate(key: str) -> tuple[int, int, int] | None:
            """(cell, node position, slot) of an op parameter ``cells.k.nodes.n.slot.*``."""
            parts = key.split(".")
            if parts[0] == "cells" and len(parts) > 4 and parts[2] == "nodes":
                return int(parts[1]), int(parts[3]), int(parts[4])
            return None

        def rename(key: str) -> str:
            where = locate(key)
            if where is None:
                return key
            k, n, slot = where
            a, b, op_a, op_b = genes[int(reduction[k])][n]
            src, name = (a, op_a) if slot == 0 else (b, op_b)
            parts = key.split(".")
            return ".".join(["cells", str(k), "edges", edge_key(INNER_NODES[n], src), name, *parts[5:]])

        def decision_of(key: str) -> int | None:
            where = locate(key)
            if where is None:
                return None
            k, n, slot = where
            return self.space.op_decision(int(reduction[k]), n, slot)

        return extract_state(template, self.state_dict(), rename, decision_of, offsets)
