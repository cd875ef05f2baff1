"""What every resumable stage shares: its in-progress checkpoint and its loop over epochs.

:class:`StageRunner` is the life of a stage's in-progress file (see
:mod:`wpnas.io.stage_checkpoint`): named by the fingerprint of the stage's inputs, read back
to resume, written when due, and finished (removed, or kept with ``keep_finished``) by
the process that writes it. :class:`EpochLoop` is the loop over epochs of an epoch-based
stage (WarmUp, training from scratch, fine-tuning, the search): the progress display, the
per-epoch metrics to MLflow under the stage's prefix, the history, and the checkpoint after
each epoch. A stage supplies only what is its own: what one epoch does and its state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wpnas import tracking
from wpnas.io.stage_checkpoint import CheckpointPolicy, StageCheckpoint
from wpnas.progress import Progress

logger = logging.getLogger(__name__)

#: A stage's state to checkpoint, built only when it is written.
Snapshot = Callable[[], dict[str, Any]]
#: The progress display's metrics of a training stage, when an epoch has them.
TRAIN_PROGRESS_KEYS = ("train_loss", "train_acc", "valid_acc", "probe_valid_acc_mean")


class StageRunner:
    """The in-progress checkpoint of one run of a stage (all no-ops without a policy).

    ``total``: the stage's length in the units ``done`` counts (epochs); nothing is written
    once it is reached (the finish writes the end). None: no limit (a map's items, whose
    count is this process's own). ``writes``: whether this process writes the file (rank 0
    of a data-parallel world; every rank its own ``part`` of a map). ``label`` names the
    stage in log lines.
    """

    def __init__(
        self,
        stage: str,
        fingerprint: str,
        policy: CheckpointPolicy | None,
        total: int | None = None,
        writes: bool = True,
        part: str | None = None,
        label: str | None = None,
    ) -> None:
        self.store: StageCheckpoint | None = None if policy is None else policy.store(stage, fingerprint, part)
        self.total = total
        self.writes = writes
        self.label = label or stage

    def load(self) -> dict[str, Any] | None:
        """The state a killed run of the same inputs left (resume on), or None."""
        return None if self.store is None else self.store.load()

    def load_parts(self) -> list[dict[str, Any]]:
        """Every part's state (a map whose processes each wrote one); empty when none."""
        return [] if self.store is None else self.store.load_parts()

    def log_resume(self, done: int) -> None:
        logger.info("%s: resuming at epoch %d of %d from %s (same schedule)", self.label, done, self.total,
                    self.store.path if self.store is not None else None)

    def due(self, done: int) -> bool:
        """Whether this process writes a checkpoint after ``done`` units."""
        return (self.store is not None and self.writes and (self.total is None or done < self.total)
                and self.store.due(done))

    def checkpoint(self, done: int, snapshot: Snapshot) -> None:
        """Write ``snapshot()`` when a checkpoint is due after ``done`` units."""
        if self.due(done):
            self.store.save(snapshot())

    def finish(self, snapshot: Snapshot) -> None:
        """The stage is done: its files go (or, with ``keep_finished``, its final state stays)."""
        if self.store is not None and self.writes:
            self.store.finish(snapshot())


@dataclass(frozen=True)
class EpochLoop:
    """How an epoch-based stage shows and records its epochs, and when it checkpoints.

    ``run`` calls ``epoch(e, progress)`` for each epoch ``e`` (from 0) that is left; the
    returned metrics get ``epoch`` (e + 1), go to the active MLflow run under
    ``metric_prefix`` (all but ``untracked``, step = epoch) and into the history, the
    progress display shows ``progress_keys``, and ``runner`` writes ``snapshot(done,
    new)`` (``new``: this call's history) when due.
    """

    desc: str
    metric_prefix: str = ""
    runner: StageRunner | None = None
    snapshot: Callable[[int, list[dict[str, Any]]], dict[str, Any]] | None = None
    log_every: float = 30.0
    track: bool = True
    show_progress: bool = True
    progress_keys: tuple[str, ...] = TRAIN_PROGRESS_KEYS
    untracked: tuple[str, ...] = ("epoch",)

    def run(self, epoch: Callable[[int, Progress], dict[str, Any]], start: int, stop: int) -> list[dict[str, Any]]:
        """The metrics of epochs ``start`` .. ``stop - 1`` (the display counts from ``start`` of ``stop``)."""
        history: list[dict[str, Any]] = []
        with Progress(stop, self.desc, unit="epoch", log_every=self.log_every, enabled=self.show_progress,
                      initial=min(start, stop)) as progress:
            for e in range(start, stop):
                metrics = epoch(e, progress)
                metrics["epoch"] = e + 1
                if self.track:
                    tracking.log_metrics({k: v for k, v in metrics.items() if k not in self.untracked}, step=e + 1,
                                         prefix=self.metric_prefix)
                history.append(metrics)
                progress.update_metrics(**{k: metrics[k] for k in self.progress_keys if k in metrics})
                progress.advance()
                if self.runner is not None and self.snapshot is not None:
                    self.runner.checkpoint(e + 1, lambda done=e + 1: self.snapshot(done, history))
        return history
