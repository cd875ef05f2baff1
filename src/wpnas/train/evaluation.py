"""Evaluating architectures with weights inherited from a SuperNet.

BN running statistics in a SuperNet mix every trained path, so each architecture is
evaluated after re-estimating the statistics of its own path on a few training batches
(BN recalibration), the standard fix for one-shot evaluation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import torch

from wpnas.data.batching import DeviceBatches
from wpnas.errors import ConfigError
from wpnas.nn.batchnorm import recalibrate_bn
from wpnas.nn.paths import PathGroups, block_correct, block_cross_entropies
from wpnas.spaces.supernet import SuperNet
from wpnas.spaces.base import Arch
from wpnas.train.engine import Engine, evaluate

logger = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]


def evaluate_architecture(
    supernet: SuperNet,
    arch: Arch,
    batches: DeviceBatches,
    engine: Engine,
    calib: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
    offsets: torch.Tensor | None = None,
) -> dict[str, float]:
    """Loss and accuracy (%) of ``arch`` on ``batches`` with inherited weights.

    With ``calib`` batches, BN statistics of the path are re-estimated first (the
    SuperNet's stored statistics are changed; evaluate again after recalibrating anew).
    """

    def forward(x: torch.Tensor) -> torch.Tensor:
        return supernet(x, arch, offsets)

    if calib:
        with engine.autocast():
            recalibrate_bn(supernet, forward, calib)
    supernet.eval()
    return evaluate(forward, batches, engine)


def evaluate_many(
    supernet: SuperNet,
    archs: Sequence[Arch],
    batches: DeviceBatches,
    engine: Engine,
    calib: Sequence[Batch] = (),
    offsets: Sequence[torch.Tensor | None] | None = None,
    calib_per_arch: Sequence[Sequence[Batch]] | None = None,
) -> list[dict[str, float]]:
    """:func:`evaluate_architecture` of every architecture, ``engine.cfg.paths_in_flight`` at a time.

    ``calib`` are calibration batches shared by every architecture, or ``calib_per_arch``
    one list per architecture; ``offsets`` one (L, K, K) tensor or None per architecture.
    With paths in flight (a space whose SuperNet has ``forward_paths``), groups of
    architectures run together (:func:`evaluate_paths`); otherwise, or with
    ``paths_in_flight: 1``, one at a time. Results equal one-at-a-time evaluation up to
    floating-point noise; the SuperNet's own BN statistics are changed only by the
    one-at-a-time route (it recalibrates them in place).
    """
    archs = list(archs)
    if calib_per_arch is not None and len(calib_per_arch) != len(archs):
        raise ConfigError(f"evaluate_many: {len(calib_per_arch)} calibration lists for {len(archs)} architectures")
    if offsets is not None and len(offsets) != len(archs):
        raise ConfigError(f"evaluate_many: {len(offsets)} offsets for {len(archs)} architectures")
    width = paths_in_flight(supernet, engine)
    if width == 1:
        return [
            evaluate_architecture(supernet, arch, batches, engine,
                                  calib if calib_per_arch is None else calib_per_arch[i],
                                  None if offsets is None else offsets[i])
            for i, arch in enumerate(archs)
        ]
    results: list[dict[str, float]] = []
    for start in range(0, len(archs), width):
        part = slice(start, start + width)
        results += evaluate_paths(supernet, archs[part], batches, engine, calib,
                                  None if offsets is None else offsets[part],
                                  None if calib_per_arch is None else calib_per_arch[part])
    return results


_declined: set[str] = set()


def paths_in_flight(supernet: SuperNet, engine: Engine) -> int:
    """How many paths ``supernet`` evaluates together on ``engine`` (1 where it cannot; said once)."""
    width = engine.paths_in_flight
    if width > 1 and not getattr(supernet, "paths_in_flight", False):
        name = getattr(getattr(supernet, "space", None), "name", type(supernet).__name__)
        if name not in _declined:
            _declined.add(name)
            logger.info("engine.paths_in_flight: %s has no forward of several paths; evaluating one "
                        "architecture at a time", name)
        return 1
    return width


@torch.no_grad()
def evaluate_paths(
    supernet: SuperNet,
    archs: Sequence[Arch],
    batches: Iterable[Batch],
    engine: Engine,
    calib: Sequence[Batch] = (),
    offsets: Sequence[torch.Tensor | None] | None = None,
    calib_per_arch: Sequence[Sequence[Batch]] | None = None,
) -> list[dict[str, float]]:
    """Loss and accuracy (%) of several architectures in one pass per batch (:mod:`wpnas.nn.paths`).

    Each architecture's BN statistics are recalibrated on ``calib`` (or its own list of
    ``calib_per_arch``) into a session of per-path statistics, then every validation
    batch is scored by all paths at once. The SuperNet's BN buffers are left as they were;
    it is left in eval mode, as :func:`evaluate_architecture` leaves it.
    """
    count = len(archs)
    stacked = _stack_offsets(offsets, count)
    groups = PathGroups(count)
    lists = [list(c) for c in calib_per_arch] if calib_per_arch is not None else None
    rounds = len(calib) if lists is None else len(lists[0])
    if lists is not None and any(len(c) != rounds for c in lists):
        raise ConfigError(f"evaluate_paths: calibration lists of unequal lengths {[len(c) for c in lists]}")
    if rounds:
        supernet.train()
        groups.calibrating = True
        with engine.autocast():
            for j in range(rounds):
                x = calib[j][0].repeat(count, 1, 1, 1) if lists is None else _cat_blocks([c[j][0] for c in lists])
                supernet.forward_paths(x, archs, stacked, groups)
        groups.calibrating = False
    supernet.eval()
    device = engine.device
    loss = torch.zeros(count, device=device, dtype=torch.float64)
    correct = torch.zeros(count, device=device, dtype=torch.float64)
    seen = 0
    for x, y in batches:
        with engine.autocast():
            logits = supernet.forward_paths(x.repeat(count, *([1] * (x.dim() - 1))), archs, stacked, groups)
        loss += block_cross_entropies(logits, y, count).double() * y.shape[0]
        correct += block_correct(logits, y, count)
        seen += y.shape[0]
    if seen == 0:
        return [{"loss": float("nan"), "acc": float("nan")} for _ in archs]
    losses, hits = (loss / seen).tolist(), (correct * (100.0 / seen)).tolist()
    return [{"loss": l, "acc": a} for l, a in zip(losses, hits)]


def _stack_offsets(offsets: Sequence[torch.Tensor | None] | None, count: int) -> torch.Tensor | None:
    if offsets is None or all(o is None for o in offsets):
        return None
    if any(o is None for o in offsets):
        raise ConfigError("evaluate_paths: offsets for some architectures and not for others")
    return torch.stack(list(offsets))


def _cat_blocks(blocks: list[torch.Tensor]) -> torch.Tensor:
    if len({b.shape for b in blocks}) != 1:
        raise ConfigError(f"evaluate_paths: calibration batches of unequal shapes {[tuple(b.shape) for b in blocks]}")
    return torch.cat(blocks)
