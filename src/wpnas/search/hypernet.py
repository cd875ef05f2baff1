"""The HyperNet of weakly weight sharing (paper Section 3.3, Figure 3).

A bidirectional LSTM reads an architecture one step per decision and emits, per step,
K*K numbers (K = ``space.offset_kernel``, 5 unless the space has larger kernels);
``offsets = 1 + output`` reshaped to (L, K, K) multiply the SuperNet's base kernels of that decision (see :mod:`wpnas.spaces.supernet` and each SuperNet for which
kernels a decision governs). Because the LSTM sees the whole architecture, two
architectures that choose the same op on a decision still get different offsets there,
which loosens the coupling of weight sharing.

Modes:
    ``off``      no HyperNet: ``forward`` returns ``None`` (plain weight sharing).
    ``trained``  identity at start (zero final projection, offsets exactly 1), trained
                 jointly with the SuperNet.
    ``fixed``    random and frozen: the final projection is rescaled so that
                 ``offsets - 1`` has standard deviation ``fixed_scale`` over random
                 architectures, so offsets differ per architecture but are not learned.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn as nn

from wpnas.config import from_dict, to_dict
from wpnas.errors import ArchitectureError, ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from wpnas.spaces.base import SearchSpace

HyperNetMode = Literal["off", "fixed", "trained"]
#: Random architectures used to calibrate the spread of a fixed HyperNet.
_CALIBRATION_ARCHS = 256


@dataclass(frozen=True)
class HyperNetConfig:
    """HyperNet settings (``hypernet:`` in the search parameters)."""

    mode: HyperNetMode = "off"
    embed_dim: int = 32
    hidden: int = 64
    fixed_scale: float = 0.1

    def __post_init__(self) -> None:
        if self.embed_dim < 1 or self.hidden < 1:
            raise ConfigError(
                f"hypernet: embed_dim and hidden must be positive, got {self.embed_dim}, {self.hidden}"
            )
        if not self.fixed_scale > 0:
            raise ConfigError(f"hypernet: fixed_scale must be > 0, got {self.fixed_scale}")


class HyperNet(nn.Module):
    """bi-LSTM over the decisions of ``space`` -> offsets (L, K, K) per architecture."""

    def __init__(
        self,
        space: SearchSpace,
        embed_dim: int = 32,
        hidden: int = 64,
        mode: HyperNetMode = "trained",
        fixed_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.cfg = from_dict(
            HyperNetConfig,
            {"mode": mode, "embed_dim": embed_dim, "hidden": hidden, "fixed_scale": fixed_scale},
            where="hypernet",
        )
        self.space = space
        self.mode: HyperNetMode = self.cfg.mode
        sizes = torch.tensor(space.num_choices, dtype=torch.long)
        # Token of (decision l, choice c) = start[l] + c: one embedding row per pair, so
        # the same choice index in two decisions has two embeddings.
        self.register_buffer("sizes", sizes, persistent=False)
        self.register_buffer("start", torch.cumsum(sizes, 0) - sizes, persistent=False)
        if self.mode == "off":
            return
        k2 = space.offset_kernel * space.offset_kernel
        self.embed = nn.Embedding(int(sizes.sum()), self.cfg.embed_dim)
        self.lstm = nn.LSTM(self.cfg.embed_dim, self.cfg.hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * self.cfg.hidden, k2)
        if self.mode == "trained":
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)
        else:
            self._calibrate_fixed()
            self.requires_grad_(False)

    @classmethod
    def from_config(cls, space: SearchSpace, cfg: HyperNetConfig) -> HyperNet:
        return cls(space, cfg.embed_dim, cfg.hidden, cfg.mode, cfg.fixed_scale)

    def describe(self) -> dict[str, Any]:
        """What a checkpoint must match to be loaded into this HyperNet."""
        return {"space": self.space.name, "options": self.space.options(), "hypernet": to_dict(self.cfg)}

    @torch.no_grad()
    def _calibrate_fixed(self) -> None:
        nn.init.zeros_(self.proj.bias)
        tokens = torch.stack([torch.randint(0, int(k), (_CALIBRATION_ARCHS,)) for k in self.sizes], dim=1)
        spread = self._raw(tokens).std()
        self.proj.weight.mul_(self.cfg.fixed_scale / spread.clamp_min(1e-12))

    def _raw(self, tokens: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.embed(tokens + self.start))
        return self.proj(h)

    def tokens(self, archs: torch.Tensor | Iterable[int] | Iterable[Iterable[int]]) -> tuple[torch.Tensor, bool]:
        """(B, L) long tensor on this module's device, and whether a single arch was given."""
        device = self.start.device
        if not isinstance(archs, torch.Tensor):
            items = list(archs)
            single = not (items and not isinstance(items[0], (int,)) and hasattr(items[0], "__iter__"))
            rows = [self.space.validate(items)] if single else [self.space.validate(a) for a in items]
            # non_blocking: a blocking host-to-device copy waits for the whole GPU queue (a host sync
            # per search step); from pageable memory the data is staged at once, so this is safe
            return torch.tensor(rows, dtype=torch.long).to(device, non_blocking=True), single
        if archs.is_floating_point() or archs.is_complex() or archs.dim() not in (1, 2):
            raise ArchitectureError(
                f"hypernet: expected a (B, L) or (L,) integer tensor of choices, got {archs.dtype} {tuple(archs.shape)}"
            )
        single = archs.dim() == 1
        tokens = archs.reshape(1, -1) if single else archs
        if tokens.shape[1] != self.space.num_decisions:
            raise ArchitectureError(
                f"hypernet: architectures have {tokens.shape[1]} choices, {self.space.name} has "
                f"{self.space.num_decisions} decisions"
            )
        tokens = tokens.to(device=device, dtype=torch.long)
        bad = (tokens < 0) | (tokens >= self.sizes)
        if bool(bad.any()):
            row, col = (int(v) for v in bad.nonzero()[0])
            raise ArchitectureError(
                f"hypernet: choice {int(tokens[row, col])} for decision "
                f"{self.space.decisions[col].name!r} is out of range 0..{int(self.sizes[col]) - 1}"
            )
        return tokens, single

    def forward(self, archs: torch.Tensor | Iterable[int] | Iterable[Iterable[int]]) -> torch.Tensor | None:
        """Offsets (B, L, K, K) for a batch, (L, K, K) for one architecture; ``None`` when off."""
        if self.mode == "off":
            return None
        tokens, single = self.tokens(archs)
        k = self.space.offset_kernel
        offsets = 1.0 + self._raw(tokens).view(tokens.shape[0], tokens.shape[1], k, k)
        return offsets[0] if single else offsets
