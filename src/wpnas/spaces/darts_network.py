"""DARTS cells, their candidate ops and the stand-alone network (search skeleton or evaluation network).

The op modules here are shared by the stand-alone network (:class:`DartsNetwork`) and the
SuperNet (:mod:`wpnas.spaces.darts_supernet`): every op's ``forward(x, offset=None)``
passes ``offset`` (a (K, K) weakly-weight-sharing kernel) to each of its convolutions,
which multiply their kernel by its top-left crop (:class:`~wpnas.nn.ops.DynamicConv2d`).

Design (one for both networks, so that a SuperNet path equals the stand-alone network
that inherits its weights exactly):

* every BN is affine with running statistics (DARTS's search network uses non-affine BN;
  its evaluation network affine BN: we use the latter everywhere);
* pooling ops are bare pools, *without* the BN that DARTS's search network appends to
  them (as in DARTS's evaluation network, so published parameter counts are reproduced);
  ``avg_pool_3x3`` excludes padding from the mean;
* ``skip_connect`` is the identity at stride 1 and a factorized reduce at stride 2;
  ``none`` is zeros at the op's output resolution;
* the cell output is the concatenation of its four inner nodes; no BN/ReLU before the
  global pooling and the linear classifier (as DARTS).

Cell layout (an :data:`Genes` entry per cell type): four inner nodes, each
``(a, b, op_a, op_b)`` with inputs ``a < b`` among the node's predecessors (0, 1 are the
cell inputs c_{k-2}, c_{k-1}; 2.. earlier inner nodes). In a reduction cell the ops
reading the inputs 0 and 1 have stride 2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from wpnas.errors import ConfigError, DataError
from wpnas.nn.ops import ConvBN, DynamicBatchNorm2d, DynamicConv2d, DynamicLinear, Stem, drop_path
from wpnas.spaces.nats_network import check_input

#: Candidate ops, in the order of DARTS's ``PRIMITIVES``.
DARTS_OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
#: Inner nodes of a cell (0 and 1 are its inputs); the cell output concatenates them.
INNER_NODES: tuple[int, ...] = (2, 3, 4, 5)
#: Nodes whose concatenation is the cell output (DARTS ``*_concat``).
CONCAT: tuple[int, ...] = INNER_NODES
#: Resolution halvings of the skeleton (two reduction cells).
REDUCTIONS = 2

#: One cell type: per inner node (a, b, op_a, op_b) with a < b.
Gene = tuple[int, int, str, str]
Genes = tuple[Gene, ...]


@dataclass(frozen=True)
class CellSpec:
    """Widths of one cell: inputs c_pp (c_{k-2}) and c_p (c_{k-1}), node width c."""

    c_pp: int
    c_p: int
    c: int
    reduction: bool
    reduction_prev: bool

    @property
    def c_out(self) -> int:
        return len(CONCAT) * self.c


def darts_plan(C: int, layers: int, stem_multiplier: int, layout: str = "cifar") -> tuple[CellSpec, ...]:
    """The DARTS skeleton: reduction cells at layers // 3 and 2 * layers // 3 double the width.

    ``cifar``: one stem of ``stem_multiplier * C`` channels feeds both inputs of the first
    cell. ``imagenet`` (DARTS's ImageNet network): two stems of C channels, the second at
    half the first's resolution, so the first cell reads its c_{k-2} through a factorized
    reduce."""
    if layout == "imagenet":
        c_pp, c_p, c, reduction_prev = C, C, C, True
    else:
        c_stem = stem_multiplier * C
        c_pp, c_p, c, reduction_prev = c_stem, c_stem, C, False
    plan = []
    for k in range(layers):
        reduction = k in reduction_layers(layers)
        if reduction:
            c *= 2
        spec = CellSpec(c_pp, c_p, c, reduction, reduction_prev)
        plan.append(spec)
        c_pp, c_p = c_p, spec.c_out
        reduction_prev = reduction
    return tuple(plan)


def reduction_layers(layers: int) -> tuple[int, int]:
    return (layers // 3, 2 * layers // 3)


# -- ops --------------------------------------------------------------------------------
class Zero(nn.Module):
    """'none': zeros at the output resolution."""

    def __init__(self, c: int, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        s = self.stride
        return torch.zeros_like(x[:, :, ::s, ::s])


class Identity(nn.Module):
    """'skip_connect' at stride 1."""

    def forward(self, x: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        return x


class Pool(nn.Module):
    """3x3 max or average pool (padding 1; the average excludes padding); no BN."""

    def __init__(self, kind: str, stride: int) -> None:
        super().__init__()
        self.kind = kind
        self.stride = stride

    def forward(self, x: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        if self.kind == "max":
            return F.max_pool2d(x, 3, self.stride, 1)
        return F.avg_pool2d(x, 3, self.stride, 1, count_include_pad=False)


class FactorizedReduce(nn.Module):
    """ReLU, two stride-2 1x1 convs (the second on the input shifted by one pixel), concat, BN."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        if c_out % 2:
            raise ConfigError(f"factorized reduce needs an even output width, got {c_out}")
        self.conv_1 = DynamicConv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = DynamicConv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = DynamicBatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        x = F.relu(x)
        y = torch.cat([self.conv_1(x, None, offset), self.conv_2(x[:, :, 1:, 1:], None, offset)], dim=1)
        return self.bn(y)


class SepConv(nn.Module):
    """(ReLU, depthwise kxk, pointwise 1x1, BN) twice; the stride on the first depthwise conv."""

    def __init__(self, c: int, kernel: int, stride: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.dw_1 = DynamicConv2d(c, c, kernel, stride=stride, padding=pad, groups=c, bias=False)
        self.pw_1 = DynamicConv2d(c, c, 1, bias=False)
        self.bn_1 = DynamicBatchNorm2d(c)
        self.dw_2 = DynamicConv2d(c, c, kernel, stride=1, padding=pad, groups=c, bias=False)
        self.pw_2 = DynamicConv2d(c, c, 1, bias=False)
        self.bn_2 = DynamicBatchNorm2d(c)

    def forward(self, x: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        x = self.bn_1(self.pw_1(self.dw_1(F.relu(x), None, offset), None, offset))
        return self.bn_2(self.pw_2(self.dw_2(F.relu(x), None, offset), None, offset))


class DilConv(nn.Module):
    """ReLU, depthwise kxk with dilation 2, pointwise 1x1, BN."""

    def __init__(self, c: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.dw = DynamicConv2d(c, c, kernel, stride=stride, padding=kernel - 1, dilation=2, groups=c, bias=False)
        self.pw = DynamicConv2d(c, c, 1, bias=False)
        self.bn = DynamicBatchNorm2d(c)

    def forward(self, x: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        return self.bn(self.pw(self.dw(F.relu(x), None, offset), None, offset))


def make_darts_op(name: str, c: int, stride: int) -> nn.Module:
    """Module of candidate op ``name`` on ``c`` channels (``stride`` 2 in reduction cells on inputs 0, 1)."""
    if name == "none":
        return Zero(c, stride)
    if name == "max_pool_3x3":
        return Pool("max", stride)
    if name == "avg_pool_3x3":
        return Pool("avg", stride)
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(c, c)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        return SepConv(c, int(name[-1]), stride)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        return DilConv(c, int(name[-1]), stride)
    raise ConfigError(f"unknown DARTS op {name!r}; expected one of {list(DARTS_OPS)}")


def is_undroppable(op: nn.Module) -> bool:
    """Ops drop-path leaves alone: the identity (as DARTS) and 'none' (zeros stay zeros)."""
    return isinstance(op, (Identity, Zero))


def make_preprocess(spec: CellSpec) -> tuple[nn.Module, nn.Module]:
    """ReLU-conv1x1-BN of both inputs; factorized reduce of c_{k-2} after a reduction cell."""
    pre0 = FactorizedReduce(spec.c_pp, spec.c) if spec.reduction_prev else ConvBN(spec.c_pp, spec.c, 1)
    return pre0, ConvBN(spec.c_p, spec.c, 1)


OpCall = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def run_cell(
    s0: torch.Tensor,
    s1: torch.Tensor,
    nodes: Sequence[tuple[int, int, OpCall, OpCall]],
    offsets: Sequence[tuple[torch.Tensor | None, torch.Tensor | None]] | None = None,
) -> torch.Tensor:
    """Evaluate a (preprocessed) cell: node = op_a(state a) + op_b(state b); concat the inner nodes."""
    states = [s0, s1]
    for n, (a, b, op_a, op_b) in enumerate(nodes):
        off_a, off_b = (None, None) if offsets is None else offsets[n]
        states.append(op_a(states[a], off_a) + op_b(states[b], off_b))
    return torch.cat([states[i] for i in CONCAT], dim=1)


class Cell(nn.Module):
    """A DARTS cell with fixed genes: ``nodes[n][0]`` reads input a, ``nodes[n][1]`` input b."""

    def __init__(self, genes: Genes, spec: CellSpec) -> None:
        super().__init__()
        self.genes = tuple(genes)
        self.spec = spec
        self.preprocess0, self.preprocess1 = make_preprocess(spec)
        self.nodes = nn.ModuleList(
            nn.ModuleList(
                make_darts_op(name, spec.c, 2 if spec.reduction and src < 2 else 1)
                for name, src in ((op_a, a), (op_b, b))
            )
            for a, b, op_a, op_b in self.genes
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        s0, s1 = self.preprocess0(s0), self.preprocess1(s1)
        nodes = []
        for (a, b, _, _), pair in zip(self.genes, self.nodes):
            ops = [op if drop_prob <= 0.0 or is_undroppable(op) else _dropping(op, drop_prob) for op in pair]
            nodes.append((a, b, ops[0], ops[1]))
        return run_cell(s0, s1, nodes)


def _dropping(op: nn.Module, prob: float) -> OpCall:
    def run(x: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        return drop_path(op(x, offset), prob)

    return run


class AuxiliaryHead(nn.Module):
    """DARTS's auxiliary head: ReLU, 5x5 avg pool (stride 3 on CIFAR's 8x8 map, 2 on
    ImageNet's 14x14), 1x1 conv to 128, BN, ReLU, 2x2 conv to 768, BN, ReLU, linear.

    Maps smaller than (5 + stride) squared are refused (8x8 on CIFAR, 7x7 on ImageNet); on
    larger maps the 768 features are averaged over the remaining positions before the
    linear layer.
    """

    def __init__(self, c_in: int, num_classes: int, stride: int = 3) -> None:
        super().__init__()
        self.stride = stride
        self.conv_1 = nn.Conv2d(c_in, 128, 1, bias=False)
        self.bn_1 = nn.BatchNorm2d(128)
        self.conv_2 = nn.Conv2d(128, 768, 2, bias=False)
        self.bn_2 = nn.BatchNorm2d(768)
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        least = 5 + self.stride  # the pool must leave 2x2 for the 2x2 conv
        if x.shape[2] < least or x.shape[3] < least:
            raise DataError(
                f"auxiliary head: the feature map after the second reduction cell is {tuple(x.shape[2:])}, "
                f"it needs at least {least}x{least} (inputs of at least {least * 4}x{least * 4} in the CIFAR "
                f"layout, {least * 32}x{least * 32} in the ImageNet one); set auxiliary: false for smaller images"
            )
        x = F.avg_pool2d(F.relu(x), 5, stride=self.stride, padding=0, count_include_pad=False)
        x = F.relu(self.bn_1(self.conv_1(x)))
        x = F.relu(self.bn_2(self.conv_2(x)))
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


class ImageNetStems(nn.Module):
    """DARTS's ImageNet stems: conv3x3/2 (C/2)-BN-ReLU-conv3x3/2 (C)-BN, then ReLU-conv3x3/2-BN:
    the two cell inputs at 1/4 and 1/8 of the image size."""

    def __init__(self, in_channels: int, C: int) -> None:
        super().__init__()
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, C // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C // 2),
            nn.ReLU(inplace=False), nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C))
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=False), nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        return s0, self.stem1(s0)


#: Resolution halvings of each layout (stems and the two reduction cells).
LAYOUT_REDUCTIONS = {"cifar": REDUCTIONS, "imagenet": REDUCTIONS + 3}


class DartsNetwork(nn.Module):
    """Stand-alone DARTS network: stem conv3x3-BN (stem_multiplier * C channels), ``layers``
    cells (reduction cells at layers // 3 and 2 * layers // 3), global average pool, linear.
    ``layout="imagenet"``: DARTS's ImageNet network instead (two stride-2 stems, see
    :class:`ImageNetStems`; 224x224 inputs end at 7x7), for evaluation only.

    ``auxiliary``: an auxiliary head after the second reduction cell; in training mode
    ``forward`` then returns ``(logits, aux_logits)``, in eval mode the logits.
    ``drop_path_prob`` (default 0): drop-path probability of every non-identity op in
    training mode (set per epoch by training from scratch; not in the state dict).
    """

    def __init__(
        self,
        in_channels: int,
        C: int,
        layers: int,
        stem_multiplier: int,
        genes: tuple[Genes, Genes],
        num_classes: int,
        auxiliary: bool = False,
        layout: str = "cifar",
    ) -> None:
        super().__init__()
        if layout not in LAYOUT_REDUCTIONS:
            raise ConfigError(f"darts network layout {layout!r} is not one of {sorted(LAYOUT_REDUCTIONS)}")
        self.in_channels = in_channels
        self.layout = layout
        plan = darts_plan(C, layers, stem_multiplier, layout)
        self.stem = Stem(in_channels, stem_multiplier * C) if layout == "cifar" else ImageNetStems(in_channels, C)
        self.cells = nn.ModuleList(Cell(genes[1] if spec.reduction else genes[0], spec) for spec in plan)
        self.aux_after = reduction_layers(layers)[1]
        self.auxiliary = AuxiliaryHead(plan[self.aux_after].c_out, num_classes, 3 if layout == "cifar" else 2) \
            if auxiliary else None
        self.classifier = DynamicLinear(plan[-1].c_out, num_classes)
        self.drop_path_prob = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        check_input(x, self.in_channels, LAYOUT_REDUCTIONS[self.layout], type(self).__name__)
        drop = self.drop_path_prob if self.training else 0.0
        if self.layout == "cifar":
            s0 = s1 = self.stem(x)
        else:
            s0, s1 = self.stem(x)
        aux = None
        for k, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, drop)
            if k == self.aux_after and self.auxiliary is not None and self.training:
                aux = self.auxiliary(s1)
        logits = self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))
        return logits if aux is None else (logits, aux)
