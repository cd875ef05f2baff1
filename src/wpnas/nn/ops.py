"""Candidate operations of the NATS-Bench cell and the residual reduction block.

Every layer here is a subclass of the plain torch layer (``nn.Conv2d``, ``nn.BatchNorm2d``,
``nn.Linear``) whose ``forward`` optionally takes

* ``width``: how many leading output channels to compute (input channels are read off the
  input tensor), so one module holding the widest weights serves every narrower network
  (channel weight sharing in the size space), and
* ``offset``: a (K, K) offset kernel of weakly weight sharing (paper Section 3.3); the
  convolution kernel is multiplied by its top-left (kh, kw) crop, broadcast over channels.

Without those arguments each layer is exactly its torch parent, so stand-alone networks
built from these modules behave (and count FLOPs, and save state dicts) like the official
NATS-Bench networks, and a SuperNet path computes the same function as the stand-alone
network that inherits its weights.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from wpnas.nn import paths

#: Size K of the (K, K) offset kernels of weakly weight sharing: one per decision, the
#: kernel of each convolution a decision governs is multiplied by its top-left crop.
OFFSET_KERNEL = 5

#: The operation names of the NAS-Bench-201 / NATS-Bench cell, official order.
OP_NAMES: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def _session(what: str) -> paths.PathGroups:
    groups = paths.active()
    if groups is None:
        raise RuntimeError(f"{what} need several paths in flight (wpnas.nn.paths.in_flight)")
    return groups


class DynamicConv2d(nn.Conv2d):
    """``nn.Conv2d`` that can run on its leading channels and scale its kernel by an offset."""

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, width: int | None = None, offset: torch.Tensor | None = None
    ) -> torch.Tensor:
        c_out = self.out_channels if width is None else int(width)
        c_in = x.shape[1]
        weight, bias = self.weight, self.bias
        if c_in != self.in_channels or c_out != self.out_channels:  # (the full width takes no slicing)
            if c_in > self.in_channels or c_out > self.out_channels:
                raise RuntimeError(
                    f"{type(self).__name__}({self.in_channels}->{self.out_channels}) cannot run {c_in}->{c_out} "
                    "channels"
                )
            weight = weight[:c_out, :c_in]
            bias = None if bias is None else bias[:c_out]
        elif offset is None:
            return self._conv_forward(x, weight, bias)
        if offset is not None:
            kh, kw = self.kernel_size
            if offset.dim() == 3:  # one offset per path in flight
                return _session("per-path offsets").conv2d(self, x, weight, offset, (slice(0, kh), slice(0, kw)))
            weight = weight * offset[:kh, :kw].to(weight.dtype)
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


def centre_crop(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """The centre (size, size) crop of the last two dimensions of ``kernel`` (odd sizes)."""
    big = kernel.shape[-1]
    if size > big or (big - size) % 2 or kernel.shape[-2] != big:
        raise RuntimeError(f"cannot take a centred {size}x{size} crop of a {tuple(kernel.shape[-2:])} kernel")
    start = (big - size) // 2
    return kernel[..., start : start + size, start : start + size]


class DynamicDepthwiseConv2d(nn.Conv2d):
    """Depthwise ``nn.Conv2d`` (groups = channels, 'same' padding, odd kernel) that can run
    on its leading ``x.shape[1]`` channels with the centre ``kernel x kernel`` crop of its
    kernel (kernel-size weight sharing: a 3x3 kernel is the centre of the 5x5 one).

    ``offset`` (weakly weight sharing): a (K, K) tensor, K odd and at least the kernel used;
    the kernel is multiplied by the *centre* crop of the offset, so the offset entry that
    scales a kernel tap is the same whichever kernel size runs (unlike the top-left crop
    of :class:`DynamicConv2d`, which matches top-left kernel sharing).
    """

    def __init__(self, channels: int, kernel_size: int, stride: int = 1, bias: bool = False) -> None:
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"{type(self).__name__} needs an odd kernel size, got {kernel_size}")
        super().__init__(
            channels, channels, kernel_size, stride=stride, padding=kernel_size // 2, groups=channels, bias=bias
        )

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, kernel: int | None = None, offset: torch.Tensor | None = None
    ) -> torch.Tensor:
        c = x.shape[1]
        big = self.kernel_size[0]
        k = big if kernel is None else int(kernel)
        if c == self.in_channels and k == big and offset is None:
            return super().forward(x)
        if c > self.in_channels or k > big or k < 1 or k % 2 == 0:
            raise RuntimeError(
                f"{type(self).__name__}({self.in_channels} channels, {big}x{big}) cannot run {c} channels at {k}x{k}"
            )
        weight = centre_crop(self.weight[:c], k)
        if offset is not None:
            weight = weight * centre_crop(offset, k).to(weight.dtype)
        bias = None if self.bias is None else self.bias[:c]
        return F.conv2d(x, weight, bias, self.stride, k // 2, self.dilation, c)


class DynamicBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` normalising the leading ``x.shape[1]`` channels with sliced parameters.

    The sliced running statistics are views of the full buffers, so training updates and
    BN recalibration (momentum ``None`` = cumulative average) write through to them.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if (groups := paths.active()) is not None:
            return groups.batch_norm(self, x)
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        if c > self.num_features:
            raise RuntimeError(f"{type(self).__name__}({self.num_features}) cannot normalise {c} channels")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean[:c] if track and self.running_mean is not None else None,
            self.running_var[:c] if track and self.running_var is not None else None,
            None if self.weight is None else self.weight[:c],
            None if self.bias is None else self.bias[:c],
            use_batch_stats,
            factor,
            self.eps,
        )


class DynamicLinear(nn.Linear):
    """``nn.Linear`` reading the leading ``x.shape[1]`` input features (all outputs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        c = x.shape[1]
        if c == self.in_features:
            return super().forward(x)
        if c > self.in_features:
            raise RuntimeError(f"{type(self).__name__}({self.in_features}) cannot read {c} features")
        return F.linear(x, self.weight[:, :c], self.bias)


class ConvBN(nn.Module):
    """Conv (no bias) + BN, optionally preceded by ReLU ("ReLUConvBN" of NAS-Bench-201)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.relu = relu
        self.conv = DynamicConv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.bn = DynamicBatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, width: int | None = None, offset: torch.Tensor | None = None) -> torch.Tensor:
        if self.relu:
            x = F.relu(x)
        return self.bn(self.conv(x, width, offset))


class SkipConnect(nn.Module):
    """Identity; when input and output widths differ, the official stride-1 conversion.

    NATS-Bench's ``FactorizedReduce`` with stride 1 is a 1x1 conv (no ReLU) + BN. It exists
    here only if ``convertible`` (a stand-alone cell with c_in != c_out, or a SuperNet cell
    whose input width can differ from its output width) and runs only when widths differ.
    """

    def __init__(self, c_in: int, c_out: int, convertible: bool = False) -> None:
        super().__init__()
        self.c_out = c_out
        self.convert = ConvBN(c_in, c_out, 1, relu=False) if (convertible or c_in != c_out) else None

    def forward(self, x: torch.Tensor, width: int | None = None, offset: torch.Tensor | None = None) -> torch.Tensor:
        width = self.c_out if width is None else width
        if x.shape[1] == width:
            return x
        if self.convert is None:
            raise RuntimeError(f"skip_connect built for {self.c_out} channels got {x.shape[1]} -> {width}")
        return self.convert(x, width, offset)


class AvgPool3x3(nn.Module):
    """3x3 average pool (stride 1, pad 1, padding excluded from the mean).

    When widths differ, NATS-Bench's ``POOLING`` first maps the input with ReLU-conv1x1-BN.
    """

    def __init__(self, c_in: int, c_out: int, convertible: bool = False) -> None:
        super().__init__()
        self.c_out = c_out
        self.preprocess = ConvBN(c_in, c_out, 1) if (convertible or c_in != c_out) else None

    def forward(self, x: torch.Tensor, width: int | None = None, offset: torch.Tensor | None = None) -> torch.Tensor:
        width = self.c_out if width is None else width
        if x.shape[1] != width:
            if self.preprocess is None:
                raise RuntimeError(f"avg_pool_3x3 built for {self.c_out} channels got {x.shape[1]} -> {width}")
            x = self.preprocess(x, width, offset)
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def make_op(name: str, c_in: int, c_out: int, convertible: bool = False) -> nn.Module | None:
    """Module of candidate op ``name`` (``None`` for 'none': it adds nothing to a node)."""
    if name == "none":
        return None
    if name == "skip_connect":
        return SkipConnect(c_in, c_out, convertible)
    if name == "nor_conv_1x1":
        return ConvBN(c_in, c_out, 1)
    if name == "nor_conv_3x3":
        return ConvBN(c_in, c_out, 3)
    if name == "avg_pool_3x3":
        return AvgPool3x3(c_in, c_out, convertible)
    raise ValueError(f"unknown cell op {name!r}; expected one of {list(OP_NAMES)}")


def drop_path(x: torch.Tensor, prob: float) -> torch.Tensor:
    """Zero whole samples of ``x`` with probability ``prob`` and rescale the rest by 1 / (1 - prob).

    The caller decides when it applies (training only); ``prob <= 0`` returns ``x`` itself.
    Draws from the global torch generator of ``x``'s device.
    """
    if prob <= 0.0:
        return x
    if prob >= 1.0:
        raise ValueError(f"drop_path probability {prob} must be < 1")
    keep = 1.0 - prob
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


class ResidualBlock(nn.Module):
    """The residual reduction block of NAS-Bench-201 (``ResNetBasicblock``, stride 2).

    ReLU-conv3x3(stride 2)-BN, ReLU-conv3x3-BN, plus a shortcut AvgPool2d(2) + conv1x1.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ConvBN(c_out, c_out, 3)
        self.shortcut = DynamicConv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor, width: int | None = None, offset: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv_b(self.conv_a(x, width, offset), width, offset)
        return out + self.shortcut(F.avg_pool2d(x, 2, 2), width, offset)


class Stem(nn.Module):
    """conv3x3 (no bias) + BN on the input image."""

    def __init__(self, in_channels: int, c_out: int) -> None:
        super().__init__()
        self.conv = DynamicConv2d(in_channels, c_out, 3, padding=1, bias=False)
        self.bn = DynamicBatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, width: int | None = None, offset: torch.Tensor | None = None) -> torch.Tensor:
        return self.bn(self.conv(x, width, offset))


class Head(nn.Module):
    """BN + ReLU, global average pool, linear classifier."""

    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__()
        self.bn = DynamicBatchNorm2d(c_in)
        self.classifier = DynamicLinear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(x))
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))
