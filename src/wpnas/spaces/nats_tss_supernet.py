"""Weight-sharing SuperNet of the NATS-Bench topology space (NAS-Bench-201 cell).

One module per (cell, edge, op); a path runs only the ops its architecture chooses
('none' edges run nothing). Each op keeps its own BN (affine + running statistics), so
``extract`` hands a stand-alone network exactly the weights the path used.

Weakly weight sharing: ``offsets[e]`` (one (5, 5) kernel per edge decision) multiplies
the conv kernel of the op chosen on edge ``e`` in every cell (all cells share one
topology, hence one decision per edge); a 1x1 conv uses ``offsets[e, :1, :1]``, a 3x3 conv
``offsets[e, :3, :3]``. Skip, pooling and 'none' have no kernel here, and the stem,
reduction blocks and classifier are shared by every architecture and never scaled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

import torch
import torch.nn as nn

from wpnas.nn.paths import PathGroups
from wpnas.spaces.nats_network import check_input, extract_state, run_cell, run_cell_paths
from wpnas.spaces.nats_skeleton import CELL_EDGES, num_reductions, tss_plan
from wpnas.nn.ops import OP_NAMES, Head, ResidualBlock, Stem, make_op
from wpnas.spaces.base import SearchSpace
from wpnas.spaces.supernet import SuperNet, check_offsets



class SharedCell(nn.Module):
    """Every candidate op on every edge; ``forward`` runs the chosen one per edge."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.edges = nn.ModuleList(
            nn.ModuleDict({name: make_op(name, channels, channels) for name in OP_NAMES if name != "none"})
            for _ in CELL_EDGES
        )

    def forward(
        self, x: torch.Tensor, ops: Sequence[str], offsets: Sequence[torch.Tensor | None] | None = None
    ) -> torch.Tensor:
        chosen = [None if name == "none" else edge[name] for edge, name in zip(self.edges, ops)]
        return run_cell(x, self.channels, chosen, offsets)

    def forward_paths(
        self, x: torch.Tensor, path_ops: Sequence[Sequence[str]], offsets: torch.Tensor | None, groups: PathGroups
    ) -> torch.Tensor:
        return run_cell_paths(x, self.channels, lambda e, name: self.edges[e][name], path_ops, offsets, groups)


class TSSSuperNet(SuperNet):
    """SuperNet of :class:`~wpnas.spaces.nats_tss.NatsTSS` (C, N from the space options)."""

    space: SearchSpace  # a NatsTSS
    #: Every path has the same conv shapes, so ``cudnn.benchmark`` tunes them once.
    dynamic_shapes: ClassVar[bool] = False
    paths_in_flight: ClassVar[bool] = True

    def __init__(self, space: SearchSpace, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__(space, in_channels, num_classes)
        plan = tss_plan(space.opts.C, space.opts.N)
        self.reductions = num_reductions(plan)
        self.stem = Stem(in_channels, space.opts.C)
        self.cells = nn.ModuleList(
            SharedCell(layer.c_out) if layer.kind == "cell" else ResidualBlock(layer.c_in, layer.c_out)
            for layer in plan
        )
        self.head = Head(plan[-1].c_out, num_classes)

    def forward(
        self, x: torch.Tensor, arch: Iterable[int] | str, offsets: torch.Tensor | None = None
    ) -> torch.Tensor:
        arch = self.space.parse(arch)
        self.check_batch(x)
        check_offsets(offsets, self.space, "nats_tss supernet")
        ops = [OP_NAMES[a] for a in arch]
        per_edge = None if offsets is None else offsets.unbind(0)
        h = self.stem(x)
        for cell in self.cells:
            h = cell(h, ops, per_edge) if isinstance(cell, SharedCell) else cell(h)
        return self.head(h)

    def check_batch(self, x: torch.Tensor) -> None:
        check_input(x, self.in_channels, self.reductions, "nats_tss supernet")

    def run_paths(self, x: torch.Tensor, archs: list[tuple[int, ...]], offsets: torch.Tensor | None,
                  groups: PathGroups) -> torch.Tensor:
        path_ops = [[OP_NAMES[a] for a in arch] for arch in archs]
        h = self.stem(x)
        for cell in self.cells:
            h = cell.forward_paths(h, path_ops, offsets, groups) if isinstance(cell, SharedCell) else cell(h)
        return self.head(h)

    def candidate_ops(self) -> list[tuple[str, nn.Module]]:
        """Every op of every edge of every cell (each always sees its cell's input shape)."""
        return [(f"cells.{k}.edges.{e}.{name}", op)
                for k, cell in enumerate(self.cells) if isinstance(cell, SharedCell)
                for e, edge in enumerate(cell.edges) for name, op in edge.items()]

    def extract(
        self, arch: Iterable[int] | str, offsets: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """State dict of ``space.build_network(arch)``; with ``offsets``, the effective kernels."""
        arch = self.space.parse(arch)
        check_offsets(offsets, self.space, "nats_tss extract")
        ops = [OP_NAMES[a] for a in arch]
        with torch.device("meta"):
            template = self.space.build_network(arch, self.in_channels, self.num_classes)

        def edge_of(key: str) -> int | None:
            parts = key.split(".")
            if parts[0] == "cells" and len(parts) > 3 and parts[2] == "edges":
                return int(parts[3])
            return None

        def rename(key: str) -> str:
            e = edge_of(key)
            if e is None:
                return key
            parts = key.split(".")
            return ".".join(parts[:4] + [ops[e]] + parts[4:])

        return extract_state(template, self.state_dict(), rename, edge_of, offsets)
