"""Evaluating architectures with weights inherited from a SuperNet.

BN running statistics in a SuperNet mix every trained path, so each architecture is
evaluated after re-estimating the statistics of its own path on a few training batches
(BN recalibration), the standard fix for one-shot evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from wpnas.data.batching import DeviceBatches
from wpnas.nn.batchnorm import recalibrate_bn
from wpnas.spaces.supernet import SuperNet
from wpnas.progress import Progress
from wpnas.spaces.base import Arch
from wpnas.train.engine import Engine, evaluate


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


def evaluate_architectures(
    supernet: SuperNet,
    archs: Sequence[Arch],
    batches: DeviceBatches,
    engine: Engine,
    calib: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
    desc: str = "evaluate",
) -> list[dict[str, float]]:
    """A map over architectures (each independent: the unit to fan out over workers)."""
    results = []
    with Progress(len(archs), desc, unit="arch") as progress:
        for arch in archs:
            results.append(evaluate_architecture(supernet, arch, batches, engine, calib))
            progress.update_metrics(acc=results[-1]["acc"])
            progress.advance()
    return results
