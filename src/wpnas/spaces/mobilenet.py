"""MobileNet search space: MobileNetV2's 17 inverted-bottleneck blocks, each searched.

Every block is one decision with (by default) 2 x 3 x 2 x 2 = 24 choices: depthwise kernel
{3, 5} x expansion ratio {1, 3, 6} x activation {ReLU, hard-swish} x squeeze-excite
{off, on}: 24^17 architectures. The skeleton (widths, strides, layouts, the block and
the squeeze-excite) is described in :mod:`wpnas.spaces.mobilenet_network`; the SuperNet
(centre-crop kernel sharing, sliced hidden channels, offsets) in
:mod:`wpnas.spaces.mobilenet_supernet`.

Choice names read ``k{kernel}_e{expansion}_{activation}`` plus ``_se`` when the block has
squeeze-excite: ``k3_e6_relu``, ``k5_e3_hswish_se``. Choices are ordered kernel, then
expansion, then activation, then squeeze-excite (off first), each in the order of the
options, so choice 0 is ``k3_e1_relu``. An architecture string joins the 17 choice names
with ``:`` (block 0 first)::

    k3_e1_relu:k3_e6_relu:...:k3_e6_relu    (MobileNetV2 with ReLU: 17 names)

Options: ``layout`` (``cifar``: 32x32 inputs, total stride 8; ``imagenet``: MobileNetV2's
strides, total stride 32), ``width_mult`` (MobileNetV2's width multiplier, channels
rounded to multiples of 8), and the candidate ``kernels`` (odd, increasing),
``expansions`` (positive, increasing), ``activations`` (``relu``, ``hswish``) and ``se``
(``false``/``true``) that make up the choices. ``offset_kernel`` is the largest kernel.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from wpnas.config import from_dict, to_dict
from wpnas.errors import ArchitectureError, ConfigError
from wpnas.spaces.base import Arch, Cost, Decision, SearchSpace
from wpnas.spaces.mobilenet_network import (
    ACTIVATIONS,
    NUM_BLOCKS,
    BlockChoice,
    MobileNetNetwork,
    Skeleton,
    skeleton,
    skeleton_cost,
)
from wpnas.spaces.mobilenet_supernet import MobileNetSuperNet
from wpnas.spaces.nats_skeleton import check_build_args, check_input_shape, check_num_classes
from wpnas.spaces.registry import register_space

_CHOICE_RE = re.compile(r"^k(?P<kernel>\d+)_e(?P<expansion>\d+)_(?P<activation>[a-z0-9]+)(?P<se>_se)?$")


@dataclass(frozen=True)
class MobileNetOptions:
    """Skeleton and candidate sets of the ``mobilenet`` space (defaults: the 24 choices, CIFAR)."""

    layout: Literal["cifar", "imagenet"] = "cifar"
    width_mult: float = 1.0
    kernels: tuple[int, ...] = (3, 5)
    expansions: tuple[int, ...] = (1, 3, 6)
    activations: tuple[str, ...] = ("relu", "hswish")
    se: tuple[bool, ...] = (False, True)

    def __post_init__(self) -> None:
        if not (self.width_mult > 0 and math.isfinite(self.width_mult)):
            raise ConfigError(f"width_mult: must be a positive number, got {self.width_mult!r}")
        if not self.kernels or list(self.kernels) != sorted(set(self.kernels)) or any(
            k < 1 or k % 2 == 0 for k in self.kernels
        ):
            raise ConfigError(f"kernels: must be distinct odd positive sizes in increasing order, got {list(self.kernels)}")
        if not self.expansions or list(self.expansions) != sorted(set(self.expansions)) or min(self.expansions) < 1:
            raise ConfigError(
                f"expansions: must be distinct positive ratios in increasing order, got {list(self.expansions)}"
            )
        if not self.activations or len(set(self.activations)) != len(self.activations) or not set(
            self.activations
        ) <= set(ACTIVATIONS):
            raise ConfigError(
                f"activations: must be distinct names among {sorted(ACTIVATIONS)}, got {list(self.activations)}"
            )
        if not self.se or len(set(self.se)) != len(self.se):
            raise ConfigError(f"se: must be distinct values among [false, true], got {list(self.se)}")


@dataclass(frozen=True)
class MobileNetEvaluationOptions:
    """``evaluation.network`` of the mobilenet space: the network trained from scratch.

    Unset keys keep the search skeleton's value (its layout and width; no dropout).
    MobileNetV2 trained with ``dropout: 0.2``.
    """

    width_mult: float | None = None
    layout: Literal["cifar", "imagenet"] | None = None
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.width_mult is not None and not (self.width_mult > 0 and math.isfinite(self.width_mult)):
            raise ConfigError(f"width_mult: must be a positive number, got {self.width_mult!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout: must be in [0, 1), got {self.dropout!r}")


@register_space("mobilenet")
class MobileNetSpace(SearchSpace):
    """17 MobileNetV2 blocks x 24 choices (kernel, expansion, activation, squeeze-excite)."""

    def __init__(self, **options: Any) -> None:
        self.opts: MobileNetOptions = from_dict(MobileNetOptions, options, where="space.options (mobilenet)")
        self._choices: tuple[BlockChoice, ...] = tuple(
            BlockChoice(k, e, a, s)
            for k in self.opts.kernels
            for e in self.opts.expansions
            for a in self.opts.activations
            for s in self.opts.se
        )
        names = tuple(c.name for c in self._choices)
        self._index = {name: i for i, name in enumerate(names)}
        self.skeleton: Skeleton = skeleton(self.opts.layout, float(self.opts.width_mult))
        super().__init__([Decision(f"block{i}", names) for i in range(NUM_BLOCKS)])

    def options(self) -> dict[str, Any]:
        return to_dict(self.opts)

    @property
    def offset_kernel(self) -> int:
        """The largest depthwise kernel: offsets multiply it (smaller kernels use the centre crop)."""
        return max(self.opts.kernels)

    @property
    def choices(self) -> tuple[BlockChoice, ...]:
        """The per-block choices, in choice-index order."""
        return self._choices

    def block_choices(self, arch: Iterable[int]) -> tuple[BlockChoice, ...]:
        return tuple(self._choices[a] for a in self.validate(arch))

    # -- strings -------------------------------------------------------------------------
    def to_string(self, arch: Iterable[int]) -> str:
        return ":".join(c.name for c in self.block_choices(arch))

    def from_string(self, text: str) -> Arch:
        example = "'k3_e6_relu' or 'k5_e3_hswish_se'"
        if not isinstance(text, str):
            raise ArchitectureError(
                f"mobilenet: expected {NUM_BLOCKS} choice names joined by ':' (each like {example}), got {text!r}"
            )
        parts = text.strip().split(":")
        if len(parts) != NUM_BLOCKS:
            raise ArchitectureError(
                f"mobilenet: {_short(text)!r} has {len(parts)} blocks, expected {NUM_BLOCKS} choice names "
                f"separated by ':' (each like {example})"
            )
        return tuple(self._parse_choice(block, part.strip()) for block, part in enumerate(parts))

    def _parse_choice(self, block: int, part: str) -> int:
        if part in self._index:
            return self._index[part]
        where = f"mobilenet: block {block} is {part!r}"
        match = _CHOICE_RE.match(part)
        if match is None:
            raise ArchitectureError(f"{where}, not a choice name like 'k3_e6_relu' or 'k5_e3_hswish_se'")
        kernel, expansion = int(match["kernel"]), int(match["expansion"])
        activation, se = match["activation"], match["se"] is not None
        opts = self.opts
        bad = []
        if kernel not in opts.kernels:
            bad.append(f"kernel {kernel} is not one of {list(opts.kernels)}")
        if expansion not in opts.expansions:
            bad.append(f"expansion {expansion} is not one of {list(opts.expansions)}")
        if activation not in opts.activations:
            bad.append(f"activation {activation!r} is not one of {list(opts.activations)}")
        if se not in opts.se:
            bad.append(f"squeeze-excite {'on' if se else 'off'} is not allowed (se options {list(opts.se)})")
        if not bad:  # well-formed and every part allowed, but not the canonical spelling (e.g. k03)
            bad.append(f"the canonical name is {BlockChoice(kernel, expansion, activation, se).name!r}")
        raise ArchitectureError(
            f"{where}, a MobileNet choice outside the {len(self._choices)} of this space: " + "; ".join(bad)
        )

    # -- networks and cost ---------------------------------------------------------------
    def cost(
        self, arch: Iterable[int] | str, input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10
    ) -> Cost:
        """Exact FLOPs (multiply-accumulates) and parameters in millions, computed analytically
        (equal to :func:`wpnas.nn.flops.count_flops_params` of ``build_network(arch)``)."""
        choices = self.block_choices(self.parse(arch))
        c, h, w = check_input_shape(input_shape, self.skeleton.reductions, f"mobilenet cost ({self.opts.layout})")
        num_classes = check_num_classes(num_classes, "mobilenet cost")
        macs, params = skeleton_cost(self.skeleton, choices, c, h, w, num_classes)
        return Cost(flops_m=macs / 1e6, params_m=params / 1e6)

    def build_supernet(self, in_channels: int = 3, num_classes: int = 10) -> MobileNetSuperNet:
        """:class:`~wpnas.spaces.mobilenet_supernet.MobileNetSuperNet`: largest kernel, widest hidden."""
        in_channels, num_classes = check_build_args(in_channels, num_classes, "mobilenet build_supernet")
        return MobileNetSuperNet(self, in_channels, num_classes)

    def build_network(
        self, arch: Iterable[int] | str, in_channels: int = 3, num_classes: int = 10
    ) -> MobileNetNetwork:
        """The stand-alone network of ``arch`` (no dropout; its state dict matches ``extract``)."""
        choices = self.block_choices(self.parse(arch))
        in_channels, num_classes = check_build_args(in_channels, num_classes, "mobilenet build_network")
        return MobileNetNetwork(in_channels, self.skeleton, choices, num_classes)

    # -- the network trained from scratch ------------------------------------------------
    def check_evaluation_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """Accept ``width_mult``, ``layout`` and ``dropout`` (e.g. the searched blocks at
        ImageNet layout, width 1.0, dropout 0.2 for transfer); empty means the search skeleton.
        Returned with every key filled in (unset ones from the search skeleton)."""
        if not options:
            return {}
        parsed = from_dict(MobileNetEvaluationOptions, options, where="evaluation.network (mobilenet)")
        return {
            "width_mult": float(self.opts.width_mult if parsed.width_mult is None else parsed.width_mult),
            "layout": self.opts.layout if parsed.layout is None else parsed.layout,
            "dropout": float(parsed.dropout),
        }

    def _evaluation_space(self, options: Mapping[str, Any]) -> MobileNetSpace:
        opts = replace(self.opts, width_mult=options["width_mult"], layout=options["layout"])
        return MobileNetSpace(**to_dict(opts))

    def build_evaluation_network(
        self,
        arch: Iterable[int] | str,
        in_channels: int = 3,
        num_classes: int = 10,
        options: Mapping[str, Any] | None = None,
    ) -> MobileNetNetwork:
        """``build_network`` at the evaluation width and layout, with classifier dropout."""
        options = self.check_evaluation_options(options)
        arch = self.parse(arch)
        if not options:
            return self.build_network(arch, in_channels, num_classes)
        net = self._evaluation_space(options).build_network(arch, in_channels, num_classes)
        net.dropout.p = options["dropout"]
        return net

    def evaluation_cost(
        self,
        arch: Iterable[int] | str,
        input_shape: Sequence[int] = (3, 32, 32),
        num_classes: int = 10,
        options: Mapping[str, Any] | None = None,
    ) -> Cost:
        """Analytic cost of the evaluation network (dropout costs nothing)."""
        options = self.check_evaluation_options(options)
        if not options:
            return self.cost(arch, input_shape, num_classes)
        return self._evaluation_space(options).cost(self.parse(arch), input_shape, num_classes)


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
