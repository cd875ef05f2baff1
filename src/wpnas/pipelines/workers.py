"""The one rule for a node that fans its stage out over local workers.

With ``run.distributed.nproc_per_node > 1`` and no world around it (a plain ``kedro run``),
a node starts the workers through the elastic launcher and gets rank 0's result back; the
node's own process is no rank, and it alone saves the artifacts and logs to MLflow. Under
``torchrun`` (a world already) or with one process, the node runs the stage itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from wpnas import distributed
from wpnas.config import RunConfig, resolve_device

R = TypeVar("R")


def fans_out(run_cfg: RunConfig) -> bool:
    """Should this node start local workers for its stage?"""
    return run_cfg.distributed.nproc_per_node > 1 and not distributed.current().active


def on_workers(fn: Callable[..., R], inputs: tuple, run_cfg: RunConfig, sections: dict[str, Any], what: str) -> R:
    """``fn(*inputs)`` on ``run.distributed.nproc_per_node`` local workers; rank 0's result.

    ``sections`` (the raw parameter sections the stage reads) are hashed on every rank and
    compared, so that workers that disagree fail before training."""
    return distributed.launch(fn, inputs, run_cfg.distributed, device=resolve_device(run_cfg.device),
                              fingerprint_of=sections, what=what)
