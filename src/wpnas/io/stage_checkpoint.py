"""In-progress checkpoints of a stage, for resuming after a kill.

A stage (WarmUp, ground truth) writes its state every ``every`` epochs (or architectures)
to ``<folder>/<stage>-<fingerprint>.pt``, atomically. The fingerprint is that of the
stage's inputs and settings, so the file is found again by a later run with the same
inputs and settings, wherever that run saves its (versioned) artifacts, and never by a run
with other ones. A finished stage removes its file.

Only the settings that change the result enter the fingerprint; how often to checkpoint
and whether to resume do not.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wpnas import tracking
from wpnas.errors import CheckpointError, ConfigError
from wpnas.io.checkpoints import load_checkpoint, save_checkpoint

logger = logging.getLogger(__name__)

DEFAULT_FOLDER = "data/09_checkpoints"


@dataclass(frozen=True)
class CheckpointPolicy:
    """Where and how often a stage checkpoints while it runs, and whether it resumes.

    ``every`` 0 turns in-progress checkpoints off; ``resume`` False starts afresh (an
    existing file for the same inputs is then overwritten by the first new checkpoint).
    """

    every: int = 1
    resume: bool = True
    folder: str = DEFAULT_FOLDER

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
            state = load_checkpoint(path)
            if state.get("resume_fingerprint") != self.fingerprint or state.get("resume_stage") != self.stage:
                raise CheckpointError(
                    f"in-progress checkpoint {str(path)!r} records stage {state.get('resume_stage')!r} fingerprint "
                    f"{state.get('resume_fingerprint')!r}, its name says {self.stage!r} {self.fingerprint!r}; "
                    "delete it"
                )
            states.append(state)
        if states:  # the MLflow run that wrote the checkpoint (killed), and this one, name each other
            tracking.link_resumed_run(states[0].get("mlflow_run_id"), self.stage)
        return states

    def load(self) -> dict[str, Any] | None:
        """The saved state of a single-writer stage, or None."""
        parts = self.load_parts()
        return parts[0] if parts else None

    def save(self, state: dict[str, Any]) -> None:
        save_checkpoint({**state, "resume_stage": self.stage, "resume_fingerprint": self.fingerprint,
                         "mlflow_run_id": tracking.active_run_id()}, self.path)

    def remove(self) -> None:
        """Remove every part (the stage finished)."""
        for path in self._paths():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
