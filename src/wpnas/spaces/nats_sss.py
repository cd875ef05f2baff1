"""NATS-Bench size space (SSS): the channel counts of 5 layers, 8 choices each.

The cell is fixed to the best TSS cell on CIFAR-100; the 5 positions are
[cell, reduction block, cell, reduction block, cell] with N=1 cell per stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from wpnas.config import from_dict, to_dict
from wpnas.errors import ArchitectureError, ConfigError
from wpnas.spaces.nats_skeleton import check_build_args, check_input_shape, check_num_classes, plan_cost, sss_plan
from wpnas.spaces.base import Arch, Cost, Decision, SearchSpace
from wpnas.spaces.nats_tss import parse_cell_string
from wpnas.spaces.nats_network import NatsNetwork
from wpnas.spaces.nats_sss_supernet import SSSSuperNet
from wpnas.spaces.registry import register_space

#: The fixed cell of every SSS network (official NATS-Bench choice).
SSS_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SSS_CHANNELS: tuple[int, ...] = (8, 16, 24, 32, 40, 48, 56, 64)
SSS_POSITIONS = 5


@dataclass(frozen=True)
class SSSOptions:
    """Channel candidates shared by the 5 positions (official: 8..64 step 8)."""

    channels: tuple[int, ...] = SSS_CHANNELS

    def __post_init__(self) -> None:
        if not self.channels or any(c < 1 for c in self.channels) or list(self.channels) != sorted(set(self.channels)):
            raise ConfigError(f"nats_sss: channels must be distinct positive increasing ints, got {self.channels}")


@register_space("nats_sss")
class NatsSSS(SearchSpace):
    """5 width decisions x 8 channel counts = 32,768 networks."""

    def __init__(self, **options: Any) -> None:
        self.opts: SSSOptions = from_dict(SSSOptions, options, where="space.options (nats_sss)")
        choices = tuple(str(c) for c in self.opts.channels)
        super().__init__([Decision(f"layer{i}", choices) for i in range(SSS_POSITIONS)])

    def options(self) -> dict[str, Any]:
        return to_dict(self.opts)

    def widths(self, arch: Iterable[int]) -> tuple[int, ...]:
        return tuple(self.opts.channels[a] for a in self.validate(arch))

    def to_string(self, arch: Iterable[int]) -> str:
        return ":".join(str(c) for c in self.widths(arch))

    def from_string(self, text: str) -> Arch:
        if not isinstance(text, str):
            raise ArchitectureError(f"nats_sss: expected a channel string like '8:16:24:32:64', got {text!r}")
        parts = text.strip().split(":")
        if len(parts) != SSS_POSITIONS:
            raise ArchitectureError(
                f"nats_sss: {text!r} has {len(parts)} channel counts, expected {SSS_POSITIONS} "
                "separated by ':' (e.g. '8:16:24:32:64')"
            )
        arch = []
        for pos, part in enumerate(parts):
            if not part.strip().isdigit():
                raise ArchitectureError(f"nats_sss: position {pos} of {text!r} is {part!r}, not a channel count")
            value = int(part)
            if value not in self.opts.channels:
                raise ArchitectureError(
                    f"nats_sss: channel {value} at position {pos} of {text!r} is not in {list(self.opts.channels)}"
                )
            arch.append(self.opts.channels.index(value))
        return tuple(arch)

    # -- networks and cost -------------------------------------------------------------
    def cell_ops(self) -> tuple[str, ...]:
        """Op name per edge of the fixed cell ``SSS_CELL``."""
        return _SSS_CELL_OPS

    def cost(
        self, arch: Iterable[int] | str, input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10
    ) -> Cost:
        """Exact NATS-Bench FLOPs/params (millions), computed analytically (no network is built)."""
        widths = self.widths(self.parse(arch))
        c, h, w = check_input_shape(input_shape, 2, "nats_sss cost")
        num_classes = check_num_classes(num_classes, "nats_sss cost")
        return _sss_cost(widths, c, h, w, num_classes)

    def build_supernet(self, in_channels: int = 3, num_classes: int = 10):
        """:class:`~wpnas.spaces.nats_sss_supernet.SSSSuperNet`: widest weights, sliced per path."""
        in_channels, num_classes = check_build_args(in_channels, num_classes, "nats_sss build_supernet")
        return SSSSuperNet(self, in_channels, num_classes)

    def build_network(self, arch: Iterable[int] | str, in_channels: int = 3, num_classes: int = 10):
        """The official NATS-Bench ``DynamicShapeTinyNet`` with the widths of ``arch``."""
        widths = self.widths(self.parse(arch))
        in_channels, num_classes = check_build_args(in_channels, num_classes, "nats_sss build_network")
        return NatsNetwork(in_channels, widths[0], sss_plan(widths), _SSS_CELL_OPS, num_classes)


_SSS_CELL_OPS: tuple[str, ...] = tuple(op for node in parse_cell_string(SSS_CELL) for op, _ in node)


@lru_cache(maxsize=1 << 17)
def _sss_cost(widths: tuple[int, ...], c: int, h: int, w: int, num_classes: int) -> Cost:
    flops, params = plan_cost(c, widths[0], sss_plan(widths), _SSS_CELL_OPS, h, w, num_classes)
    return Cost(flops_m=flops / 1e6, params_m=params / 1e6)
