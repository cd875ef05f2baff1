"""The MobileNetV2 skeleton of the ``mobilenet`` space: layer table, exact cost, networks.

Skeleton (MobileNetV2, Sandler et al. 2018, Table 2): a 3x3 stem conv with 32 channels,
17 inverted-bottleneck blocks in 7 stages (t, c, n, s) = (1,16,1,1), (6,24,2,2),
(6,32,3,2), (6,64,4,2), (6,96,3,1), (6,160,3,2), (6,320,1,1), a 1x1 conv to 1280
channels, global average pooling, (dropout) and a linear classifier. Only the stage
widths c, repeats n and strides s are kept; every block's kernel, expansion t,
activation and squeeze-excite are searched (the table's t is a choice, see
:mod:`wpnas.spaces.mobilenet`). The first block of a stage has the stage stride and maps
to c channels; the others keep c channels at stride 1.

Widths: ``width_mult`` scales the stem and the 17 block widths, rounded to multiples of 8
as MobileNetV2 does (:func:`make_divisible`); the last conv keeps 1280 channels unless
``width_mult > 1`` (1280 x width_mult, rounded), as in MobileNetV2.

Layouts (strides of the stem and of the 7 stages; every conv pads k // 2):

* ``imagenet``: stem 2, stages 1, 2, 2, 2, 1, 2, 1 (total 32): 224x224 -> 7x7.
* ``cifar``:    stem 1, stages 1, 1, 2, 2, 1, 2, 1 (total 8):  32x32 -> 4x4 (the stem and
  the 24-channel stage run at stride 1).

Input height and width must be multiples of the total stride.

Block (MobileNetV2 inverted residual with MobileNetV3's optional squeeze-excite):
expansion 1x1 conv + BN + act (absent when the expansion is 1: the depthwise conv reads
the input directly, as MobileNetV2's t=1 block does), depthwise kxk conv (stride s) + BN +
act, optional squeeze-excite, projection 1x1 conv + BN (linear), plus the input when the
stride is 1 and the input and output widths are equal. Activations: ``relu`` is plain
ReLU (MobileNetV2 uses ReLU6; neither costs anything), ``hswish`` is hard-swish; the stem
and the last conv use ReLU. Squeeze-excite (MobileNetV3): global average pool, 1x1 conv
(with bias) to ``make_divisible(hidden / 4, 8)`` channels, ReLU, 1x1 conv (with bias)
back to ``hidden``, hard-sigmoid, times the input; it acts on the expanded (hidden)
channels after the depthwise activation.

Cost convention (:mod:`wpnas.nn.flops`): multiply-accumulates of every Conv2d (plus one per
output element for a bias: only the squeeze-excite convs have one) and of the Linear
(plus its bias), per image; parameters are all trainable tensors (BN affine included).
:func:`skeleton_cost` computes both analytically; ``torch.utils.flop_counter`` counts
2 FLOPs per multiply-accumulate and ignores biases, so its total / 2 plus the bias
elements equals ours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from wpnas.errors import ConfigError
from wpnas.nn.ops import ConvBN, DynamicBatchNorm2d, DynamicConv2d, DynamicDepthwiseConv2d
from wpnas.spaces.nats_network import check_input

#: MobileNetV2's bottleneck table: (expansion t, channels c, repeats n, stride s).
MBV2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280
NUM_BLOCKS = sum(n for _, _, n, _ in MBV2_STAGES)  # 17
#: (stem stride, stride of each of the 7 stages) per layout.
LAYOUT_STRIDES: dict[str, tuple[int, tuple[int, ...]]] = {
    "imagenet": (2, (1, 2, 2, 2, 1, 2, 1)),
    "cifar": (1, (1, 1, 2, 2, 1, 2, 1)),
}
ACTIVATIONS = {"relu": F.relu, "hswish": F.hardswish}


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``), never
    more than 10% below ``value`` (MobileNetV2's channel rounding)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def se_channels(hidden: int) -> int:
    """Squeeze width of the squeeze-excite on ``hidden`` channels (reduction 4, multiple of 8)."""
    return make_divisible(hidden / 4, 8)


class BlockChoice(NamedTuple):
    """One block's choice: kernel size, expansion ratio, activation name, squeeze-excite."""

    kernel: int
    expansion: int
    activation: str
    se: bool

    @property
    def name(self) -> str:
        return f"k{self.kernel}_e{self.expansion}_{self.activation}" + ("_se" if self.se else "")


@dataclass(frozen=True)
class BlockSpec:
    """The fixed part of a block: input and output widths and stride."""

    c_in: int
    c_out: int
    stride: int


@dataclass(frozen=True)
class Skeleton:
    """Widths and strides of the whole network (everything but the block choices)."""

    stem_stride: int
    c_stem: int
    blocks: tuple[BlockSpec, ...]
    c_last: int

    @property
    def total_stride(self) -> int:
        return self.stem_stride * math.prod(b.stride for b in self.blocks)

    @property
    def reductions(self) -> int:
        return int(round(math.log2(self.total_stride)))


@lru_cache(maxsize=64)
def skeleton(layout: str, width_mult: float) -> Skeleton:
    """The MobileNetV2 skeleton for ``layout`` scaled by ``width_mult``."""
    if layout not in LAYOUT_STRIDES:
        raise ConfigError(f"mobilenet: layout {layout!r} is not one of {sorted(LAYOUT_STRIDES)}")
    if not (width_mult > 0 and math.isfinite(width_mult)):
        raise ConfigError(f"mobilenet: width_mult must be a positive number, got {width_mult!r}")
    stem_stride, stage_strides = LAYOUT_STRIDES[layout]
    c_stem = make_divisible(STEM_CHANNELS * width_mult)
    blocks = []
    c_prev = c_stem
    for (_, c, n, _), stride in zip(MBV2_STAGES, stage_strides):
        c_out = make_divisible(c * width_mult)
        for i in range(n):
            blocks.append(BlockSpec(c_prev, c_out, stride if i == 0 else 1))
            c_prev = c_out
    c_last = make_divisible(LAST_CHANNELS * width_mult) if width_mult > 1.0 else LAST_CHANNELS
    return Skeleton(stem_stride, c_stem, tuple(blocks), c_last)


# -- exact cost (no network built) -------------------------------------------------------
def _out(size: int, stride: int) -> int:
    """Output size of an odd-kernel conv with padding k // 2."""
    return (size - 1) // stride + 1


@lru_cache(maxsize=1 << 16)
def block_cost(
    c_in: int, c_out: int, stride: int, h: int, w: int, kernel: int, expansion: int, se: bool
) -> tuple[int, int]:
    """(MACs, params) of one block reading an h x w map."""
    hidden = c_in * expansion
    macs = params = 0
    if expansion != 1:
        macs += c_in * hidden * h * w
        params += c_in * hidden + 2 * hidden
    ho, wo = _out(h, stride), _out(w, stride)
    macs += kernel * kernel * hidden * ho * wo
    params += kernel * kernel * hidden + 2 * hidden
    if se:
        r = se_channels(hidden)
        se_size = hidden * r + r + r * hidden + hidden  # weights and biases, on a 1x1 map
        macs += se_size
        params += se_size
    macs += hidden * c_out * ho * wo
    params += hidden * c_out + 2 * c_out
    return macs, params


@lru_cache(maxsize=1 << 17)
def skeleton_cost(
    skel: Skeleton, choices: tuple[BlockChoice, ...], c: int, h: int, w: int, num_classes: int
) -> tuple[int, int]:
    """Exact (MACs, params) of the stand-alone network on one c x h x w image."""
    h, w = _out(h, skel.stem_stride), _out(w, skel.stem_stride)
    macs = 9 * c * skel.c_stem * h * w
    params = 9 * c * skel.c_stem + 2 * skel.c_stem
    for spec, ch in zip(skel.blocks, choices):
        m, p = block_cost(spec.c_in, spec.c_out, spec.stride, h, w, ch.kernel, ch.expansion, ch.se)
        macs += m
        params += p
        h, w = _out(h, spec.stride), _out(w, spec.stride)
    c_in_last = skel.blocks[-1].c_out
    macs += c_in_last * skel.c_last * h * w
    params += c_in_last * skel.c_last + 2 * skel.c_last
    macs += skel.c_last * num_classes + num_classes
    params += skel.c_last * num_classes + num_classes
    return macs, params


# -- modules -------------------------------------------------------------------------------
class DepthwiseBN(nn.Module):
    """Depthwise kxk conv (no bias) + BN; ``forward(x, kernel, offset)`` may run a centre crop."""

    def __init__(self, channels: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = DynamicDepthwiseConv2d(channels, kernel, stride)
        self.bn = DynamicBatchNorm2d(channels)

    def forward(self, x: torch.Tensor, kernel: int | None = None, offset: torch.Tensor | None = None) -> torch.Tensor:
        return self.bn(self.conv(x, kernel, offset))


class SqueezeExcite(nn.Module):
    """MobileNetV3 squeeze-excite on the leading ``x.shape[1]`` of ``channels`` channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeeze = se_channels(channels)
        self.reduce = DynamicConv2d(channels, squeeze, 1, bias=True)
        self.expand = DynamicConv2d(squeeze, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.relu(self.reduce(s, se_channels(c)))
        s = F.hardsigmoid(self.expand(s, c))
        return x * s


class InvertedResidual(nn.Module):
    """One searchable block holding the weights for ``kernel``, ``hidden`` channels, an
    expansion conv (``expand``) and squeeze-excite (``se``).

    A stand-alone block is built for its ``choice`` and ``forward(x)`` runs it; a SuperNet
    block is built for the largest options (``choice=None``) and ``forward(x, choice,
    offset)`` runs a sub-block: the centre crop of the depthwise kernel, the leading
    ``c_in * expansion`` hidden channels, no expansion conv when the expansion is 1.
    ``offset`` (a (K, K) tensor) multiplies the depthwise kernel by its centre crop.
    """

    def __init__(
        self, spec: BlockSpec, kernel: int, hidden: int, expand: bool, se: bool, choice: BlockChoice | None = None
    ) -> None:
        super().__init__()
        self.c_in, self.c_out, self.stride = spec.c_in, spec.c_out, spec.stride
        self.choice = choice
        self.expand = ConvBN(spec.c_in, hidden, 1, relu=False) if expand else None
        self.depthwise = DepthwiseBN(hidden, kernel, spec.stride)
        self.se = SqueezeExcite(hidden) if se else None
        self.project = ConvBN(hidden, spec.c_out, 1, relu=False)
        self.residual = spec.stride == 1 and spec.c_in == spec.c_out

    def forward(
        self, x: torch.Tensor, choice: BlockChoice | None = None, offset: torch.Tensor | None = None
    ) -> torch.Tensor:
        choice = self.choice if choice is None else choice
        if choice is None:
            raise RuntimeError("a SuperNet block needs the choice to run")
        act = ACTIVATIONS[choice.activation]
        h = x
        if choice.expansion != 1:
            if self.expand is None:
                raise RuntimeError(f"block built without an expansion conv cannot run {choice.name}")
            h = act(self.expand(x, self.c_in * choice.expansion))
        h = act(self.depthwise(h, choice.kernel, offset))
        if choice.se:
            if self.se is None:
                raise RuntimeError(f"block built without squeeze-excite cannot run {choice.name}")
            h = self.se(h)
        h = self.project(h, self.c_out)
        return h + x if self.residual else h


def build_body(
    module: nn.Module, in_channels: int, skel: Skeleton, blocks: Sequence[InvertedResidual], num_classes: int
) -> None:
    """Give ``module`` (a stand-alone network or a SuperNet, so both have the same state-dict
    keys; it must have ``in_channels``) the stem, ``blocks``, the last conv, the dropout and the classifier of ``skel``."""
    module.skeleton = skel
    module.stem = ConvBN(in_channels, skel.c_stem, 3, stride=skel.stem_stride, relu=False)
    module.blocks = nn.ModuleList(blocks)
    module.last = ConvBN(skel.blocks[-1].c_out, skel.c_last, 1, relu=False)
    module.dropout = nn.Dropout(0.0)
    module.classifier = nn.Linear(skel.c_last, num_classes)


def run_body(
    module: nn.Module,
    x: torch.Tensor,
    choices: Sequence[BlockChoice | None],
    offsets: Sequence[torch.Tensor | None],
    where: str,
) -> torch.Tensor:
    """Logits of the network :func:`build_body` gave ``module``, each block run with its choice and offset."""
    check_input(x, module.in_channels, module.skeleton.reductions, where)
    h = F.relu(module.stem(x))
    for block, choice, offset in zip(module.blocks, choices, offsets):
        h = block(h, choice, offset)
    h = F.relu(module.last(h))
    return module.classifier(module.dropout(F.adaptive_avg_pool2d(h, 1).flatten(1)))


class MobileNetNetwork(nn.Module):
    """Stand-alone network of one architecture; ``forward(x)`` -> logits.

    ``dropout`` is the classifier dropout (training mode only; MobileNetV2 used 0.2). The
    search skeleton has none, so it computes the same function as its SuperNet path.
    """

    def __init__(
        self,
        in_channels: int,
        skel: Skeleton,
        choices: Sequence[BlockChoice],
        num_classes: int,
        dropout: float = 0.0,
    ) -> None:
        if len(choices) != len(skel.blocks):
            raise ConfigError(f"mobilenet: {len(choices)} block choices for {len(skel.blocks)} blocks")
        blocks = [
            InvertedResidual(spec, ch.kernel, spec.c_in * ch.expansion, ch.expansion != 1, ch.se, ch)
            for spec, ch in zip(skel.blocks, choices)
        ]
        super().__init__()
        self.in_channels = in_channels
        build_body(self, in_channels, skel, blocks, num_classes)
        self.choices = tuple(choices)
        self.dropout.p = float(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.blocks)
        return run_body(self, x, [None] * n, [None] * n, type(self).__name__)
