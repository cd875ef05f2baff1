"""Weight-sharing SuperNet of the ``mobilenet`` space (:mod:`wpnas.spaces.mobilenet`).

Each of the 17 blocks holds one set of weights for its largest options, and a path runs
the sub-block its choice names:

* **Kernel**: one depthwise kernel of the largest size (5x5 by default); a smaller kernel is
  its centre crop (a 3x3 path uses taps [1:4, 1:4] of the 5x5), as once-for-all networks do
  (without their kernel transformation matrices).
* **Expansion**: the expansion conv, the depthwise conv, their BNs, the squeeze-excite and
  the projection hold ``c_in * max(expansions)`` hidden channels; expansion e uses the
  leading ``c_in * e`` (channel slicing as in the NATS-SSS SuperNet). Expansion 1 skips the
  expansion conv (as the stand-alone block and MobileNetV2's t=1 block do): the depthwise
  conv, its BN, the squeeze-excite and the projection read the block input, sliced to
  ``c_in`` channels.
* **Squeeze-excite**: one module per block at the widest hidden width; a path with h hidden
  channels uses reduce weights [:r(h), :h] and expand weights [:h, :r(h)] (r(h) =
  ``make_divisible(h / 4, 8)``) and the matching bias slices. Paths without it skip it.
* **Activation**: ReLU or hard-swish is applied per path; nothing is stored.

BN: affine parameters and running statistics are shared and sliced (views of the full
buffers), as in the NATS-SSS SuperNet; evaluation of inherited weights recalibrates the
path's statistics first (:func:`wpnas.nn.batchnorm.recalibrate_bn`, which works on a path:
the sliced BN layers average the batch statistics into the shared buffers).

Weakly weight sharing: ``offsets`` has shape (17, K, K), K = ``space.offset_kernel`` (the
largest kernel). ``offsets[l]`` multiplies the depthwise kernel of block l, and a k x k
kernel uses the *centre* (k, k) crop of it (matching centre-crop kernel sharing: every
kernel tap keeps its offset entry whichever kernel size runs; this differs from the
top-left crop of the NATS spaces). The block's 1x1 convs (expansion, projection,
squeeze-excite) take no offset: each is followed by BN (or, for squeeze-excite, acts on a
gate), so a single scalar per conv would be removed by batch statistics in training and
add nothing that a spatial offset pattern on the depthwise kernel does not.
``extract(arch, offsets)`` folds the offsets into the stand-alone depthwise kernels.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import torch

from wpnas.nn.ops import centre_crop
from wpnas.spaces.base import SearchSpace
from wpnas.spaces.mobilenet_network import InvertedResidual, build_body, run_body
from wpnas.spaces.supernet import SuperNet, check_offsets


class MobileNetSuperNet(SuperNet):
    """SuperNet of :class:`~wpnas.spaces.mobilenet.MobileNetSpace` (largest kernel, widest hidden)."""

    space: SearchSpace  # a MobileNetSpace
    #: Hidden widths and kernels change with the sampled path (as in SSS): keep cudnn.benchmark off.
    dynamic_shapes: ClassVar[bool] = True

    def __init__(self, space: SearchSpace, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__(space, in_channels, num_classes)
        opts = space.opts
        skel = space.skeleton
        e_max = max(opts.expansions)
        blocks = [
            InvertedResidual(spec, max(opts.kernels), spec.c_in * e_max, e_max != 1, True in opts.se)
            for spec in skel.blocks
        ]
        build_body(self, in_channels, skel, blocks, num_classes)

    def forward(
        self, x: torch.Tensor, arch: Iterable[int] | str, offsets: torch.Tensor | None = None
    ) -> torch.Tensor:
        choices = self.space.block_choices(self.space.parse(arch))
        check_offsets(offsets, self.space, "mobilenet supernet")
        per_block = [None] * len(choices) if offsets is None else list(offsets.unbind(0))
        return run_body(self, x, choices, per_block, "mobilenet supernet")

    def extract(
        self, arch: Iterable[int] | str, offsets: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """State dict of ``space.build_network(arch)``: centre kernel crops and leading channel
        slices of the shared weights, depthwise kernels times the centre crop of ``offsets``."""
        arch = self.space.parse(arch)
        check_offsets(offsets, self.space, "mobilenet extract")
        with torch.device("meta"):
            template = self.space.build_network(arch, self.in_channels, self.num_classes)
        shared = self.state_dict()
        out: dict[str, torch.Tensor] = {}
        for key, like in template.state_dict().items():
            src = shared[key]
            parts = key.split(".")
            if parts[0] == "blocks" and parts[2:] == ["depthwise", "conv", "weight"]:
                src = centre_crop(src[: like.shape[0]], like.shape[-1])
                if offsets is not None:
                    src = src * centre_crop(offsets[int(parts[1])], like.shape[-1]).to(src.dtype)
            elif src.shape != like.shape:
                src = src[tuple(slice(0, n) for n in like.shape)]
            out[key] = src.detach().clone()
        return out
