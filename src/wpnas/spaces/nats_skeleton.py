"""The NATS-Bench macro skeleton as data, and its exact cost without building a network.

Both NATS spaces use one skeleton: stem conv3x3+BN, then a list of layers that are either
a cell (the 4-node DAG) or a residual reduction block (stride 2), then BN-ReLU, global
pooling and a linear classifier. A *plan* lists those layers with their widths; the
stand-alone networks, the SuperNets and :func:`plan_cost` all read the same plan.

Counting convention (that of NATS-Bench's ``get_model_infos``, checked against the
official figures in ``nats_cost_fixture.json``): FLOPs are multiply-accumulates of every
Conv2d (plus one per output element for a bias) and of the Linear layer (plus its bias),
for one image; pooling, BN, ReLU and additions are not counted. Parameters are all
trainable tensors (conv, BN affine, linear weight and bias); BN running statistics are
not. Both are reported in millions (1e6, not 2**20).

This module imports no torch, so search and benchmark code can price every
architecture of a space cheaply.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from wpnas.errors import ConfigError

#: Cell edges (to_node, from_node) in the order of the official cell string.
CELL_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
#: Ops that carry a convolution kernel of the given size when widths match.
CONV_KERNEL = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}


@dataclass(frozen=True)
class Layer:
    """One layer of the skeleton after the stem."""

    kind: Literal["cell", "reduce"]
    c_in: int
    c_out: int


def tss_plan(C: int, N: int) -> tuple[Layer, ...]:
    """TSS: N cells at C, reduction to 2C, N cells, reduction to 4C, N cells."""
    plan: list[Layer] = []
    c = C
    for stage in range(3):
        if stage:
            plan.append(Layer("reduce", c, 2 * c))
            c *= 2
        plan.extend(Layer("cell", c, c) for _ in range(N))
    return tuple(plan)


def sss_plan(widths: Sequence[int]) -> tuple[Layer, ...]:
    """SSS (N=1): [cell, reduce, cell, reduce, cell] with the 5 chosen widths.

    As in NATS-Bench's ``DynamicShapeTinyNet``, the stem outputs ``widths[0]`` and each
    layer reads the previous layer's width, so the cells at positions 2 and 4 may change
    width (their node-0 ops convert channels).
    """
    kinds = ("cell", "reduce", "cell", "reduce", "cell")
    if len(widths) != len(kinds):
        raise ConfigError(f"nats_sss: expected {len(kinds)} widths, got {list(widths)}")
    plan = []
    c_prev = widths[0]
    for kind, c in zip(kinds, widths):
        plan.append(Layer(kind, c_prev, c))
        c_prev = c
    return tuple(plan)


def num_reductions(plan: Sequence[Layer]) -> int:
    return sum(layer.kind == "reduce" for layer in plan)


def check_input_shape(input_shape: Sequence[int], reductions: int, where: str) -> tuple[int, int, int]:
    """(C, H, W) as ints; H and W must halve evenly at each reduction (as the official net needs)."""
    try:
        c, h, w = (int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: input_shape {input_shape!r} is not (channels, height, width)") from None
    step = 2**reductions
    if c < 1 or h < step or w < step or h % step or w % step:
        raise ConfigError(
            f"{where}: input_shape {tuple(input_shape)!r} needs channels >= 1 and height/width positive "
            f"multiples of {step} (the skeleton halves them {reductions} times)"
        )
    return c, h, w


def _positive_int(value: int, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{where}: {name} must be a positive integer, got {value!r}")
    return int(value)


def check_num_classes(num_classes: int, where: str) -> int:
    return _positive_int(num_classes, "num_classes", where)


def check_build_args(in_channels: int, num_classes: int, where: str) -> tuple[int, int]:
    return _positive_int(in_channels, "in_channels", where), check_num_classes(num_classes, where)


def _conv(c_in: int, c_out: int, k: int, h: int, w: int) -> tuple[int, int]:
    """(MACs, params) of a bias-free k x k conv producing an h x w map."""
    params = k * k * c_in * c_out
    return params * h * w, params


def op_cost(name: str, c_src: int, c_out: int, h: int, w: int) -> tuple[int, int]:
    """(FLOPs, params) of one cell op reading c_src channels and writing c_out at h x w."""
    if name == "none":
        return 0, 0
    if name in CONV_KERNEL:
        flops, params = _conv(c_src, c_out, CONV_KERNEL[name], h, w)
        return flops, params + 2 * c_out
    if name in ("skip_connect", "avg_pool_3x3"):
        if c_src == c_out:
            return 0, 0
        flops, params = _conv(c_src, c_out, 1, h, w)  # the 1x1 conversion (+ BN)
        return flops, params + 2 * c_out
    raise ConfigError(f"unknown cell op {name!r}")


def cell_cost(cell_ops: Sequence[str], c_in: int, c_out: int, h: int, w: int) -> tuple[int, int]:
    flops = params = 0
    for name, (_, src) in zip(cell_ops, CELL_EDGES):
        f, p = op_cost(name, c_in if src == 0 else c_out, c_out, h, w)
        flops += f
        params += p
    return flops, params


def reduction_cost(c_in: int, c_out: int, h: int, w: int) -> tuple[int, int]:
    """Residual block reading h x w, writing h/2 x w/2."""
    h2, w2 = h // 2, w // 2
    fa, pa = _conv(c_in, c_out, 3, h2, w2)
    fb, pb = _conv(c_out, c_out, 3, h2, w2)
    fs, ps = _conv(c_in, c_out, 1, h2, w2)
    return fa + fb + fs, pa + pb + ps + 4 * c_out


def plan_cost(
    in_channels: int,
    stem_channels: int,
    plan: Sequence[Layer],
    cell_ops: Sequence[str],
    height: int,
    width: int,
    num_classes: int,
) -> tuple[int, int]:
    """Exact (FLOPs, params) of the stand-alone network of ``plan`` on one image."""
    h, w = height, width
    flops, params = _conv(in_channels, stem_channels, 3, h, w)
    params += 2 * stem_channels
    for layer in plan:
        if layer.kind == "cell":
            f, p = cell_cost(cell_ops, layer.c_in, layer.c_out, h, w)
        else:
            f, p = reduction_cost(layer.c_in, layer.c_out, h, w)
            h, w = h // 2, w // 2
        flops += f
        params += p
    c_last = plan[-1].c_out if plan else stem_channels
    params += 2 * c_last  # final BN
    flops += c_last * num_classes + num_classes
    params += c_last * num_classes + num_classes
    return flops, params
