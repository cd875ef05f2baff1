"""What every resumable stage shares: its in-progress checkpoint and its loop over epochs.

:class:`StageRunner`: the stage's file (:mod:`wpnas.io.stage_checkpoint`) named by the
fingerprint of its inputs, read back to resume, written when due, finished by its writer.
:class:`EpochLoop`: the epochs of WarmUp, training from scratch, fine-tuning and the
search, with progress, MLflow metrics, history and the checkpoint after each epoch. A stage
supplies only what is its own: what one epoch does and its state.
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

Snapshot = Callable[[], dict[str, Any]]  # a stage's state, built only when it is written
TRAIN_PROGRESS_KEYS = ("train_loss", "train_acc", "valid_acc", "probe_valid_acc_mean")


class StageRunner:
    """The in-progress checkpoint of one run of a stage (no-ops without a policy).

    ``total``: the stage's length in the units ``done`` counts (epochs), at which the finish
    takes over; None: none (a map's rows). ``writes``: whether this process writes (rank 0
    of a data-parallel world; each rank its own ``part`` of a map).
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
        return None if self.store is None else self.store.load()

    def load_parts(self) -> list[dict[str, Any]]:
        return [] if self.store is None else self.store.load_parts()

    def log_resume(self, done: int) -> None:
        logger.info("%s: resuming at epoch %d of %d from %s (same schedule)", self.label, done, self.total,
                    self.store.path if self.store is not None else None)

    def checkpoint(self, done: int, snapshot: Snapshot) -> None:
        """Write ``snapshot()`` when a checkpoint is due after ``done`` units."""
        if (self.store is not None and self.writes and (self.total is None or done < self.total)
                and self.store.due(done)):
            self.store.save(snapshot())

    def finish(self, snapshot: Snapshot) -> None:
        """The stage is done: its files go (or, with ``keep_finished``, its final state stays)."""
        if self.store is not None and self.writes:
            self.store.finish(snapshot())


@dataclass(frozen=True)
class EpochLoop:
    """How a stage shows, records and checkpoints its epochs: ``run`` calls ``epoch(e, progress)``
    for each epoch left; its metrics get ``epoch`` (e + 1), go to MLflow under
    ``metric_prefix`` (but ``untracked``; step = epoch) and to the history, the display shows
    ``progress_keys``, and ``runner`` writes ``snapshot(done, new)`` (new: this run's history)."""

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
