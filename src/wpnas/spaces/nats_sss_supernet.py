"""Channel-sharing SuperNet of the NATS-Bench size space.

Every conv, BN and the classifier hold the widest weights (``max(channels)``); a path with
widths (w0..w4) slices the leading channels, as slimmable / once-for-all networks do.
BN: the affine parameters and running statistics are shared and sliced like the conv
weights (the slices are views, so training writes through to the shared buffers). The
statistics a narrower path sees depend on every upstream width, so no per-width copy
would be right for all architectures; evaluation instead re-estimates the statistics of
the path on a few training batches (:func:`wpnas.nn.batchnorm.recalibrate_bn`).

Cells after a reduction block may change width; their node-0 ops keep the official
conversion layers (skip: 1x1 conv + BN; pooling: ReLU-conv1x1-BN first), used only
when the chosen widths differ.

Weakly weight sharing: ``offsets[l]`` multiplies every conv kernel whose output width
is decision ``l`` — the stem and the first cell for ``l = 0``, the reduction block or
cell at position ``l`` otherwise (3x3 kernels use ``offsets[l, :3, :3]``, 1x1 kernels
``offsets[l, :1, :1]``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import torch
import torch.nn as nn

from wpnas.spaces.nats_network import Cell, check_input, extract_state
from wpnas.spaces.nats_skeleton import num_reductions, sss_plan
from wpnas.nn.ops import Head, ResidualBlock, Stem
from wpnas.spaces.base import SearchSpace
from wpnas.spaces.supernet import SuperNet, check_offsets



class SSSSuperNet(SuperNet):
    """SuperNet of :class:`~wpnas.spaces.nats_sss.NatsSSS` (widest = max of the channel options)."""

    space: SearchSpace  # a NatsSSS
    #: Conv shapes change with the sampled widths: with ``cudnn.benchmark`` on, every new
    #: width combination is re-tuned (measured ~300 ms/step vs ~15-50 ms/step off, H200).
    dynamic_shapes: ClassVar[bool] = True

    def __init__(self, space: SearchSpace, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__(space, in_channels, num_classes)
        widest = max(space.opts.channels)
        plan = sss_plan([widest] * space.num_decisions)
        self.reductions = num_reductions(plan)
        cell_ops = space.cell_ops()
        self.stem = Stem(in_channels, widest)
        self.cells = nn.ModuleList(
            Cell(cell_ops, widest, widest, convertible=pos > 0)
            if layer.kind == "cell"
            else ResidualBlock(widest, widest)
            for pos, layer in enumerate(plan)
        )
        self.head = Head(widest, num_classes)

    def forward(
        self, x: torch.Tensor, arch: Iterable[int] | str, offsets: torch.Tensor | None = None
    ) -> torch.Tensor:
        widths = self.space.widths(self.space.parse(arch))
        check_input(x, self.in_channels, self.reductions, "nats_sss supernet")
        check_offsets(offsets, self.space, "nats_sss supernet")
        per_layer = [None] * len(widths) if offsets is None else list(offsets.unbind(0))
        h = self.stem(x, widths[0], per_layer[0])
        for pos, cell in enumerate(self.cells):
            if isinstance(cell, Cell):
                edge_offsets = None if offsets is None else [per_layer[pos]] * len(cell.edges)
                h = cell(h, widths[pos], edge_offsets)
            else:
                h = cell(h, widths[pos], per_layer[pos])
        return self.head(h)

    def extract(
        self, arch: Iterable[int] | str, offsets: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """State dict of ``space.build_network(arch)``: leading slices (times offsets) of the shared weights."""
        arch = self.space.parse(arch)
        check_offsets(offsets, self.space, "nats_sss extract")
        with torch.device("meta"):
            template = self.space.build_network(arch, self.in_channels, self.num_classes)

        def decision_of(key: str) -> int | None:
            parts = key.split(".")
            if parts[0] == "stem":
                return 0
            if parts[0] == "cells":
                return int(parts[1])
            return None

        return extract_state(template, self.state_dict(), lambda key: key, decision_of, offsets)
