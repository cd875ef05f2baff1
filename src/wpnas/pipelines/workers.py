"""The one rule for a node that fans its stage out over local workers.

With more than one worker for its stage (``run.distributed.nproc_per_node > 1``, or for a
map over independent runs ``run.distributed.map_workers_per_device``) and no world around
it (a plain ``kedro run``), a node starts the workers through the elastic launcher and gets
rank 0's result back; the node's own process is no rank, and it alone saves the artifacts
and logs to MLflow. Under ``torchrun`` (a world already) or with one worker, the node runs
the stage itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from wpnas import distributed
from wpnas.config import RunConfig, resolve_device

R = TypeVar("R")


def run_stage(fn: Callable[..., R], inputs: tuple, run_cfg: RunConfig, sections: dict[str, Any], what: str,
              work: int | None = None, work_name: str | None = None, here: Callable[..., Any] | None = None,
              ) -> tuple[Any, bool]:
    """``fn(*inputs)`` by the one rule: on the stage's local workers (rank 0's result) when the node
    fans out, else in this process. Also says whether workers ran it: the node then logs what one
    process logs as it goes. ``work``: the stage is a map over that many runs (``work_name`` names
    them, and a world larger than the work is refused before any worker starts). ``here``: what this
    process runs instead of ``fn`` when it does not fan out (a result that does not pickle)."""
    if not fans_out(run_cfg, work):
        return (here or fn)(*inputs), False
    if work is not None and work_name is not None:
        distributed.check_work(work, stage_workers(run_cfg, work), work_name)
    return on_workers(fn, inputs, run_cfg, sections, what, work), True


def stage_workers(run_cfg: RunConfig, work: int | None = None) -> int:
    """Workers a node's stage runs on: ``nproc_per_node``, or for a map over ``work`` independent
    runs (``work`` given) ``DistributedConfig.map_world``."""
    if work is None:
        return run_cfg.distributed.nproc_per_node
    return run_cfg.distributed.map_world(resolve_device(run_cfg.device), work)


def fans_out(run_cfg: RunConfig, work: int | None = None) -> bool:
    """Should this node start local workers for its stage (a map over ``work`` runs, if given)?"""
    return stage_workers(run_cfg, work) > 1 and not distributed.current().active


def on_workers(fn: Callable[..., R], inputs: tuple, run_cfg: RunConfig, sections: dict[str, Any], what: str,
               work: int | None = None) -> R:
    """``fn(*inputs)`` on :func:`stage_workers` local workers; rank 0's result.

    ``sections`` (the raw parameter sections the stage reads) are hashed on every rank and
    compared, so that workers that disagree fail before training."""
    cfg = dataclasses.replace(run_cfg.distributed, nproc_per_node=stage_workers(run_cfg, work))
    return distributed.launch(fn, inputs, cfg, device=resolve_device(run_cfg.device),
                              fingerprint_of=sections, what=what)
