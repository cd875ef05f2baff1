"""A stage's in-progress checkpoint outlives the stage until Kedro has saved what it produced.

While a pipeline runs, the stages called by the nodes of
:data:`~wpnas.pipelines.preflight.CHECKPOINTING_NODES` keep their final state in
``run.checkpoint_dir`` when they finish (``CheckpointPolicy.keep_finished``, set by
:func:`~wpnas.pipelines.params.checkpoint_policy` when this hook has set
``KEEP_FINISHED_ENV``, which the workers a node starts inherit; a node called outside Kedro
removes the file itself, as a library call does).
Once the catalog has saved every output of such a node, :class:`StageFileHooks` removes the
files of that folder written while the node ran (the project folder's lock guarantees they
are this run's). A save that fails (a full disk, a read-only version folder) leaves them, so
the same ``kedro run`` again finds the finished stage, trains nothing, and only saves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from wpnas import distributed

logger = logging.getLogger(__name__)


@dataclass
class _NodeFiles:
    folder: Path
    started_ns: int
    unsaved: set[str] = field(default_factory=set)


def written_since(folder: Path, started_ns: int) -> list[Path]:
    """The checkpoint files in ``folder`` written at or after ``started_ns`` (``time.time_ns``)."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("*.pt"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime_ns >= started_ns:
                found.append(path)
    return sorted(found)


class StageFileHooks:
    """Remove a checkpointing node's in-progress files once all its outputs are saved."""

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}
        self._nodes: dict[str, _NodeFiles] = {}

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        from wpnas.pipelines.params import KEEP_FINISHED_ENV

        self._params = dict(context.params)
        self._nodes.clear()
        os.environ.pop(KEEP_FINISHED_ENV, None)  # left by an interrupted session of this process

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        from wpnas.pipelines.params import KEEP_FINISHED_ENV

        os.environ[KEEP_FINISHED_ENV] = "1"  # the stages keep their finished state; inherited by workers

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        from wpnas.pipelines.params import KEEP_FINISHED_ENV

        os.environ.pop(KEEP_FINISHED_ENV, None)

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        from wpnas.pipelines.params import KEEP_FINISHED_ENV

        os.environ.pop(KEEP_FINISHED_ENV, None)

    @hook_impl
    def before_node_run(self, node: Any, **_: Any) -> None:
        from wpnas.pipelines.params import run_config
        from wpnas.pipelines.preflight import CHECKPOINTING_NODES

        if node.name not in CHECKPOINTING_NODES:
            return
        if distributed.launched_by_torchrun() and int(os.environ.get("RANK", "0")) != 0:
            return  # rank 0 writes the files and saves the artifacts
        folder = Path(run_config(self._params.get("run")).checkpoint_dir)
        # a coarse file clock may stamp a write just after this moment with a time just before it
        self._nodes[node.name] = _NodeFiles(folder, time.time_ns() - 10_000_000, set(node.outputs))

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        files = self._nodes.get(node.name)
        if files is None:
            return
        files.unsaved.discard(dataset_name)
        if files.unsaved:
            return
        del self._nodes[node.name]
        removed = []
        for path in written_since(files.folder, files.started_ns):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path.name)
        if removed:
            logger.info("%s: outputs saved; removed its in-progress checkpoint(s) %s", node.name, ", ".join(removed))
