"""SGD with momentum / Nesterov / weight decay and a per-step cosine schedule."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from wpnas.errors import ConfigError


@dataclass(frozen=True)
class OptimConfig:
    """Learning rate decays from ``lr`` to ``lr_min`` on a cosine over all steps of a stage.

    Paper: warm-up 0.1 -> 0.01, search 0.01 -> 1e-5 (SGD).
    """

    lr: float = 0.1
    lr_min: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    grad_clip: float | None = 5.0

    def __post_init__(self) -> None:
        if not (self.lr > 0 and 0 <= self.lr_min <= self.lr):
            raise ConfigError(f"optim: need lr > 0 and 0 <= lr_min <= lr, got lr={self.lr}, lr_min={self.lr_min}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"optim.momentum: {self.momentum} must be in [0, 1)")
        if self.nesterov and self.momentum == 0:
            raise ConfigError("optim.nesterov needs momentum > 0")
        if self.weight_decay < 0:
            raise ConfigError(f"optim.weight_decay: {self.weight_decay} must be >= 0")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"optim.grad_clip: {self.grad_clip} must be > 0 or null")


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.SGD:
    return torch.optim.SGD(
        [p for p in params if p.requires_grad],
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
    """Cosine from ``lr`` to ``lr_min`` over ``total_steps`` optimizer steps."""
    total = max(1, int(total_steps))

    def factor(step: int) -> float:
        progress = min(step, total) / total
        return (cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * progress))) / cfg.lr

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
