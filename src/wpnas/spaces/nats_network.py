"""Stand-alone NATS-Bench networks (TSS ``TinyNetwork``, SSS ``DynamicShapeTinyNet``).

One class builds both from a skeleton plan (:mod:`wpnas.spaces.nats_skeleton`) and a fixed
cell. Also here: the input checks and the weight extraction shared by the SuperNets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn as nn

from wpnas.errors import ConfigError, DataError
from wpnas.nn.paths import PathGroups
from wpnas.spaces.nats_skeleton import CELL_EDGES, Layer, num_reductions
from wpnas.nn.ops import Head, ResidualBlock, SkipConnect, Stem, drop_path, make_op


class Cell(nn.Module):
    """The 4-node cell with one fixed op per edge: node j = sum_i op_{j<-i}(node i).

    Ops reading node 0 map c_in -> c_out (the official conversions when they differ);
    the others map c_out -> c_out. 'none' edges hold no module and add nothing; a node
    whose inputs are all 'none' is zeros. ``convertible`` keeps the conversion layers
    of skip/pool ops on node 0 even when c_in == c_out (a SuperNet cell whose input
    width varies).

    Drop-path (stand-alone training only): ``forward(..., drop_prob=p)`` zeroes the output
    of every non-identity edge (convs, pooling, a converting skip) per sample with
    probability p and rescales the survivors; identity skips and 'none' are never dropped.
    The caller passes p > 0 only in training mode (``NatsNetwork`` does).
    """

    def __init__(self, ops: Sequence[str], c_in: int, c_out: int, convertible: bool = False) -> None:
        super().__init__()
        if len(ops) != len(CELL_EDGES):
            raise ConfigError(f"a cell needs {len(CELL_EDGES)} ops, got {list(ops)}")
        self.ops = tuple(ops)
        self.c_out = c_out
        self.edges = nn.ModuleList(
            make_op(name, c_in if src == 0 else c_out, c_out, convertible and src == 0)
            for name, (_, src) in zip(self.ops, CELL_EDGES)
        )

    def forward(
        self,
        x: torch.Tensor,
        width: int | None = None,
        offsets: Sequence[torch.Tensor | None] | None = None,
        drop_prob: float = 0.0,
    ) -> torch.Tensor:
        width = self.c_out if width is None else width
        edges: list[Callable[..., torch.Tensor] | None] = list(self.edges)
        if drop_prob > 0.0:
            edges = [op if op is None or is_identity(op) else partial(_dropped, op, drop_prob) for op in edges]
        return run_cell(x, width, edges, offsets)


def is_identity(op: nn.Module) -> bool:
    """A skip edge without a conversion layer (what drop-path leaves alone)."""
    return isinstance(op, SkipConnect) and op.convert is None


def _dropped(
    op: Callable[..., torch.Tensor], prob: float, x: torch.Tensor, width: int, offset: torch.Tensor | None
) -> torch.Tensor:
    return drop_path(op(x, width, offset), prob)


def run_cell(
    x: torch.Tensor,
    width: int,
    edge_ops: Sequence[Callable[..., torch.Tensor] | None],
    offsets: Sequence[torch.Tensor | None] | None,
) -> torch.Tensor:
    """Evaluate the cell DAG given one callable (or None for 'none') per edge."""

    def edge(e: int, source: torch.Tensor) -> torch.Tensor | None:
        op = edge_ops[e]
        return None if op is None else op(source, width, None if offsets is None else offsets[e])

    return _walk_cell(x, width, edge)


def run_cell_paths(
    x: torch.Tensor,
    width: int,
    op_of: Callable[[int, str], Callable[..., torch.Tensor]],
    path_ops: Sequence[Sequence[str]],
    offsets: torch.Tensor | None,
    groups: PathGroups,
) -> torch.Tensor:
    """:func:`run_cell` for several paths in flight (:mod:`wpnas.nn.paths`).

    ``x`` holds one block per path (path-major); ``path_ops[k]`` are path k's op names per
    edge and ``op_of(edge, name)`` the module. On each edge the blocks are put in order of
    choice (one gather), every distinct op runs once on the contiguous blocks of the paths
    that chose it (with their offsets ``offsets[rows, edge]`` when ``offsets`` (P, L, K, K)
    is given), and one gather puts the outputs back in path order ('none' contributes
    zeros); each path's node sums its edges in edge order, as :func:`run_cell` does.
    """
    count = len(path_ops)

    def edge(e: int, source: torch.Tensor) -> torch.Tensor | None:
        chosen: dict[str, list[int]] = {}
        for k, ops in enumerate(path_ops):
            chosen.setdefault(ops[e], []).append(k)
        idle = chosen.pop("none", [])
        return _edge_paths(source, width, e, op_of, chosen, idle, offsets, groups, count) if chosen else None

    return _walk_cell(x, width, edge)


def _walk_cell(x: torch.Tensor, width: int,
               edge: Callable[[int, torch.Tensor], torch.Tensor | None]) -> torch.Tensor:
    """The cell DAG: node j = sum over i < j of ``edge(e, node i)`` (None adds nothing), edges in
    the order of :data:`CELL_EDGES`; a node with nothing to add is zeros."""
    nodes = [x]
    e = 0
    for j in range(1, 4):
        acc: torch.Tensor | None = None
        for i in range(j):
            y = edge(e, nodes[i])
            if y is not None:
                acc = y if acc is None else acc + y
            e += 1
        if acc is None:
            acc = zeros_like_map(x, width)
        nodes.append(acc)
    return nodes[-1]


def _edge_paths(
    source: torch.Tensor,
    width: int,
    edge: int,
    op_of: Callable[[int, str], Callable[..., torch.Tensor]],
    chosen: dict[str, list[int]],
    idle: list[int],
    offsets: torch.Tensor | None,
    groups: PathGroups,
    count: int,
) -> torch.Tensor:
    """One edge's output for every path (zeros for the ``idle`` paths, whose choice is 'none')."""
    if len(chosen) == 1 and not idle:  # every path runs the same op: no reordering
        (name, rows), = chosen.items()
        with groups.serving(rows):
            return op_of(edge, name)(source, width, None if offsets is None else offsets[:, edge])
    order = [r for rows in chosen.values() for r in rows]
    blocks = source.unflatten(0, (count, -1))
    size = blocks.shape[1]
    ordered = blocks.index_select(0, groups.index(order, source.device)).flatten(0, 1)
    outputs, start = [], 0
    for name, rows in chosen.items():
        part = ordered.narrow(0, start * size, len(rows) * size)
        with groups.serving(rows):
            offset = None if offsets is None else offsets[:, edge].index_select(0, groups.index(rows, offsets.device))
            outputs.append(op_of(edge, name)(part, width, offset))
        start += len(rows)
    if idle:
        outputs.append(outputs[0].new_zeros((len(idle) * size, *outputs[0].shape[1:])))
        order += idle
    back = [0] * count
    for position, r in enumerate(order):
        back[r] = position
    merged = torch.cat(outputs).unflatten(0, (count, -1))
    return merged.index_select(0, groups.index(back, source.device)).flatten(0, 1)


def zeros_like_map(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Zeros shaped like feature map ``x`` with ``channels`` channels, same memory format."""
    fmt = (
        torch.channels_last
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format
    )
    return torch.zeros((x.shape[0], channels, *x.shape[2:]), dtype=x.dtype, device=x.device).contiguous(
        memory_format=fmt
    )


def check_input(x: torch.Tensor, in_channels: int, reductions: int, where: str) -> None:
    """Reject an input batch the network cannot run, naming the bad shape."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise DataError(f"{where}: expected an image batch (N, C, H, W), got {shape}")
    if x.shape[1] != in_channels:
        raise DataError(
            f"{where}: input has {x.shape[1]} channels (shape {tuple(x.shape)}), the network expects {in_channels}"
        )
    step = 2**reductions
    if x.shape[2] % step or x.shape[3] % step or x.shape[2] == 0 or x.shape[3] == 0:
        raise DataError(
            f"{where}: input height/width {tuple(x.shape[2:])} must be positive multiples of {step} "
            f"(the skeleton halves them {reductions} times)"
        )


class NatsNetwork(nn.Module):
    """Stand-alone network: stem, the layers of ``plan``, head. ``forward(x)`` -> logits.

    ``drop_path_prob`` (default 0) is the drop-path probability of every cell's
    non-identity edges in training mode; evaluation mode never drops. Training from
    scratch sets it per epoch (:mod:`wpnas.train.scratch`); it is not part of the state dict.
    """

    def __init__(
        self, in_channels: int, stem_channels: int, plan: Sequence[Layer], cell_ops: Sequence[str], num_classes: int
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.reductions = num_reductions(plan)
        self.stem = Stem(in_channels, stem_channels)
        self.cells = nn.ModuleList(
            Cell(cell_ops, layer.c_in, layer.c_out) if layer.kind == "cell" else ResidualBlock(layer.c_in, layer.c_out)
            for layer in plan
        )
        self.head = Head(plan[-1].c_out if plan else stem_channels, num_classes)
        self.drop_path_prob = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, self.reductions, type(self).__name__)
        drop = self.drop_path_prob if self.training else 0.0
        h = self.stem(x)
        for cell in self.cells:
            h = cell(h, drop_prob=drop) if drop > 0.0 and isinstance(cell, Cell) else cell(h)
        return self.head(h)


def extract_state(
    template: nn.Module,
    shared: dict[str, torch.Tensor],
    rename: Callable[[str], str],
    decision_of: Callable[[str], int | None],
    offsets: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """State dict for ``template`` (any device, e.g. meta) cut from ``shared`` tensors.

    Each entry is the leading slice of the shared tensor named ``rename(key)``; conv
    kernels governed by a decision are multiplied by the top-left crop of its offsets,
    so the stand-alone network holds the effective weights of the SuperNet path.
    """
    out: dict[str, torch.Tensor] = {}
    for key, like in template.state_dict().items():
        src = shared[rename(key)]
        if src.shape != like.shape:
            src = src[tuple(slice(0, n) for n in like.shape)]
        if offsets is not None and like.dim() == 4:
            decision = decision_of(key)
            if decision is not None:
                src = src * offsets[decision, : like.shape[2], : like.shape[3]].to(src.dtype)
        out[key] = src.detach().clone()
    return out
