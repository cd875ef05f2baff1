"""In-progress checkpoints of a stage, for resuming after a kill.

A stage (WarmUp, ground truth) writes its state every ``every`` epochs (or architectures)
to ``<folder>/<stage>-<fingerprint>.pt``, atomically. The fingerprint is that of the
stage's inputs and settings, so the file is found again by a later run with the same
inputs and settings, wherever that run saves its (versioned) artifacts, and never by a run
with other ones. A finished stage removes its file, or, with ``keep_finished``, writes its
final state there and leaves the removal to whoever saves the stage's artifact (the Kedro
glue removes it once the catalog has saved the node's outputs), so a failing save leaves
the finished stage resumable: run again, nothing is redone but the save.

A state with a NaN tensor (a diverging run) is never written, and one
found on disk is refused: resuming from NaN weights diverges again. Every error about a
file says how to recover (delete it, or set ``<stage>.resume: false``).

Only the settings that change the result enter the fingerprint; how often to checkpoint
and whether to resume do not.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wpnas import tracking
from wpnas.errors import CheckpointError, ConfigError, TrainingError
from wpnas.io.checkpoints import load_checkpoint, save_checkpoint

logger = logging.getLogger(__name__)


def first_nan(state: Any, where: str = "") -> str | None:
    """The key path of the first floating-point tensor in ``state`` (nested dicts, lists) holding
    a NaN, or None. (Infinities are not looked for: a masked parameter may hold ``-inf``.)"""
    if isinstance(state, torch.Tensor):
        if state.is_floating_point() and state.numel() and bool(torch.isnan(state).any()):
            return where or "the tensor"
        return None
    if isinstance(state, dict):
        items = state.items()
    elif isinstance(state, (list, tuple)):
        items = enumerate(state)
    else:
        return None
    for key, value in items:
        found = first_nan(value, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None

DEFAULT_FOLDER = "data/09_checkpoints"


@dataclass(frozen=True)
class CheckpointPolicy:
    """Where and how often a stage checkpoints while it runs, and whether it resumes.

    ``every`` 0 turns in-progress checkpoints off; ``resume`` False starts afresh (an
    existing file for the same inputs is then overwritten by the first new checkpoint).
    ``keep_finished`` keeps a finished stage's final state (see the module docstring).
    """

    every: int = 1
    resume: bool = True
    folder: str = DEFAULT_FOLDER
    keep_finished: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 0:
            raise ConfigError(f"checkpoint_every: {self.every!r} must be an integer >= 0 (0 = no checkpoints "
                              "during the stage)")
        if not isinstance(self.resume, bool):
            raise ConfigError(f"resume: {self.resume!r} must be true or false")

    def store(self, stage: str, fingerprint: str, part: str | None = None) -> StageCheckpoint:
        return StageCheckpoint(self, stage, fingerprint, part)


@dataclass(frozen=True)
class StageCheckpoint:
    """The in-progress file(s) of one stage for one input fingerprint.

    ``part`` names one writer's file when several processes checkpoint the same stage
    (a rank of a distributed map); :meth:`load_parts` reads every part.
    """

    policy: CheckpointPolicy
    stage: str
    fingerprint: str
    part: str | None = None

    @property
    def stem(self) -> str:
        return f"{self.stage}-{self.fingerprint}"

    @property
    def path(self) -> Path:
        suffix = "" if self.part is None else f".{self.part}"
        return Path(self.policy.folder) / f"{self.stem}{suffix}.pt"

    def due(self, done: int) -> bool:
        """Whether a checkpoint is due after ``done`` epochs (architectures) of this stage."""
        return self.policy.every > 0 and done % self.policy.every == 0

    def _paths(self) -> list[Path]:
        folder = Path(self.policy.folder)
        if not folder.is_dir():
            return []
        return sorted(folder.glob(f"{self.stem}.pt")) + sorted(folder.glob(f"{self.stem}.*.pt"))

    def load_parts(self) -> list[dict[str, Any]]:
        """Every saved part for this fingerprint (empty when none, or when resuming is off)."""
        paths = self._paths()
        if not paths:
            return []
        if not self.policy.resume:
            logger.info("%s: not resuming from %s (resume is false); starting afresh", self.stage,
                        ", ".join(str(p) for p in paths))
            return []
        states = []
        for path in paths:
            try:
                state = load_checkpoint(path)
            except CheckpointError as err:
                raise CheckpointError(f"in-progress {err}; {self.recovery(path)}") from err
            if state.get("resume_fingerprint") != self.fingerprint or state.get("resume_stage") != self.stage:
                raise CheckpointError(
                    f"in-progress checkpoint {str(path)!r} records stage {state.get('resume_stage')!r} fingerprint "
                    f"{state.get('resume_fingerprint')!r}, its name says {self.stage!r} {self.fingerprint!r}; "
                    f"{self.recovery(path)}"
                )
            bad = first_nan(state)
            if bad is not None:
                raise CheckpointError(
                    f"in-progress checkpoint {str(path)!r} holds NaN ({bad}; a diverged run): resuming "
                    f"from it would diverge again; {self.recovery(path)}"
                )
            states.append(state)
        if states:  # the MLflow run that wrote the checkpoint (killed), and this one, name each other
            tracking.link_resumed_run(states[0].get("mlflow_run_id"), self.stage)
        return states

    def recovery(self, path: Path) -> str:
        """How to get past a bad in-progress file."""
        return (f"delete {str(path)!r} to redo the stage from its start (what it saved is lost), or set "
                f"{self.stage}.resume: false to start afresh and overwrite it")

    def load(self) -> dict[str, Any] | None:
        """The saved state of a single-writer stage, or None."""
        parts = self.load_parts()
        return parts[0] if parts else None

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` atomically; refuse (:class:`TrainingError`) one with a NaN tensor."""
        bad = first_nan(state)
        if bad is not None:
            raise TrainingError(
                f"{self.stage}: training diverged ({bad} holds NaN); the in-progress checkpoint was not "
                f"written, {str(self.path)!r} keeps the last good state if there is one. Lower the learning "
                "rate or check the data"
            )
        save_checkpoint({**state, "resume_stage": self.stage, "resume_fingerprint": self.fingerprint,
                         "mlflow_run_id": tracking.active_run_id()}, self.path)

    def finish(self, state: dict[str, Any]) -> None:
        """The stage is done: remove its files, or with ``keep_finished`` write its final ``state``
        (read back on the next run, which then redoes nothing) and leave them for the caller."""
        if self.policy.keep_finished and self.policy.every > 0:
            self.save({**state, "resume_finished": True})
        else:
            self.remove()

    def remove(self) -> None:
        """Remove every part (the stage finished)."""
        for path in self._paths():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
