"""Kedro under torch.distributed: one MLflow run and one set of artifacts, whatever the world size.

Two launches are supported (see docs/distributed.md):

- ``kedro run`` in one process with ``run.distributed.nproc_per_node: N``: the nodes that
  fan out (warmup, ground truth, search, evaluation) start N workers through the elastic launcher
  (a map stage N x ``map_workers_per_device``); this process is the only one Kedro runs in,
  so it alone saves artifacts and logs to MLflow.
- ``torchrun ... -m wpnas run ...`` (or ``kedro run`` as the torchrun program): every rank runs
  the whole Kedro session. These hooks make ranks other than 0 silent: their MLflow
  tracking is switched off (and pointed at a private throw-away store, so no two ranks
  race to create the project's database), and every catalog dataset is wrapped so that
  saves stay in the rank's memory. All ranks join the process group before the first node
  and compare a hash of the parameters, so ranks started with different settings fail
  before any training.

Rank 0 logs ``distributed.world_size`` and ``distributed.backend`` as run parameters (and
``distributed.map_world_size`` where the map stages start another number of workers).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import AbstractDataset, MemoryDataset

from wpnas import distributed, tracking

logger = logging.getLogger(__name__)

_NOTHING = object()


class RankLocalDataset(AbstractDataset):
    """A dataset as seen by a rank other than 0: loads read the real one, saves stay in memory."""

    def __init__(self, inner: AbstractDataset) -> None:
        self._inner = inner
        self._data: Any = _NOTHING

    def load(self) -> Any:
        return self._inner.load() if self._data is _NOTHING else self._data

    def save(self, data: Any) -> None:
        self._data = data

    def _exists(self) -> bool:
        return self._data is not _NOTHING or self._inner.exists()

    def _release(self) -> None:
        self._data = _NOTHING

    def _describe(self) -> dict[str, Any]:
        return {"rank_local": True, "inner": type(self._inner).__name__}


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


class DistributedHooks:
    """Rank-0-only artifacts and tracking under torchrun; process group and parameter hash per run."""

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}
        self._context: Any = None
        self._scratch: tempfile.TemporaryDirectory | None = None
        self._joined = False

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        self._context = context
        self._params = dict(context.params)
        if distributed.launched_by_torchrun() and _rank() != 0:
            # before kedro-mlflow sets up its store: this rank's (disabled) tracking goes elsewhere
            self._scratch = tempfile.TemporaryDirectory(prefix=f"wpnas-rank{_rank()}-")
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(self._scratch.name) / 'mlflow.db'}"

    @hook_impl
    def after_catalog_created(self, catalog: Any, **_: Any) -> None:
        if not (distributed.launched_by_torchrun() and _rank() != 0):
            return
        quiet = logging.getLogger("kedro.io.data_catalog")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # "Replacing dataset" once per entry is noise here
        try:
            for name in list(catalog.keys()):
                if name == "parameters" or name.startswith("params:"):
                    continue
                dataset = catalog[name]
                if not isinstance(dataset, (MemoryDataset, RankLocalDataset)):
                    catalog[name] = RankLocalDataset(dataset)
        finally:
            quiet.setLevel(level)

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if distributed.launched_by_torchrun():
            if _rank() != 0:
                self._silence_mlflow(run_params)
            self._join()

    def _silence_mlflow(self, run_params: dict[str, Any]) -> None:
        config = getattr(self._context, "mlflow", None)
        if config is None:
            return
        names = run_params.get("pipeline_name") or run_params.get("pipeline_names") or ["__default__"]
        names = [names] if isinstance(names, str) else list(names)
        config.tracking.disable_tracking.pipelines = sorted(set(config.tracking.disable_tracking.pipelines) | set(names))

    def _join(self) -> None:
        """Join the torchrun world and compare a hash of the parameters before any node runs."""
        from wpnas.config import resolve_device
        from wpnas.pipelines.params import run_config

        run = run_config(self._params.get("run"))
        device = resolve_device(run.device)
        if device.type == "cuda" and device.index is None:
            device = distributed.worker_device(device, int(os.environ.get("LOCAL_RANK", 0)))
        world = distributed.init_from_env(run.distributed, device)
        self._joined = True
        distributed.check_consistent(self._params, "parameters")
        logger.info("rank %d of %d joined (backend %s); parameters agree", world.rank, world.size, world.backend)

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._leave()

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._leave()

    def _leave(self) -> None:
        if self._joined:
            distributed.shutdown()
            self._joined = False
        if self._scratch is not None:
            with contextlib.suppress(OSError):
                self._scratch.cleanup()
            self._scratch = None


class DistributedParamsHook:
    """Log the world size and backend of the run (after kedro-mlflow has opened the run)."""

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._params = dict(context.params)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if not tracking.is_tracking():
            return
        tracking.log_params({"distributed": describe_world(self._params)})


def describe_world(params: dict[str, Any]) -> dict[str, Any]:
    """World size and backend a run uses: torchrun's world, else ``run.distributed`` (1 and 'none' alone)."""
    from wpnas.config import resolve_device
    from wpnas.pipelines.params import run_config

    run = run_config(params.get("run"))
    if distributed.launched_by_torchrun():
        world = distributed.current()
        size = world.size if world.active else distributed.env_world_size()
        backend = world.backend or distributed.resolve_backend(
            run.distributed.backend, resolve_device(run.device), int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        return {"world_size": size, "backend": backend, "launcher": "torchrun"}
    nproc = run.distributed.nproc_per_node
    device = resolve_device(run.device)
    # the most workers a map stage (fine-tunes, repeated evaluations) starts; fewer when its work is smaller
    map_size = run.distributed.map_world(device, work=sys.maxsize)
    described = (
        {"world_size": 1, "backend": "none", "launcher": "none"}
        if nproc == 1
        else {"world_size": nproc, "backend": distributed.resolve_backend(run.distributed.backend, device, nproc),
              "launcher": "elastic_launch"}
    )
    if map_size != nproc:
        described["map_world_size"] = map_size
    return described
