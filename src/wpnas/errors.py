"""Exceptions raised on bad input, so callers can tell user errors from bugs."""


class WpnasError(ValueError):
    """Base class: bad input that a user can fix (a value, a path, a file)."""


class ConfigError(WpnasError):
    """A configuration value is unknown, out of range or inconsistent."""


class DataError(WpnasError):
    """A dataset path is missing, empty or malformed."""


class ArchitectureError(WpnasError):
    """An architecture string or choice tuple does not belong to the search space."""


class CheckpointError(WpnasError):
    """A checkpoint file is corrupt or was written for another space or configuration."""


class TrainingError(RuntimeError):
    """Training diverged (for example a NaN loss); nothing is saved from the failed run."""


class StorageError(WpnasError):
    """An output location is not writable, or its disk is (or would become) full."""


class RunConflictError(WpnasError):
    """Another run holds this project folder (its lock file names it)."""


class WorkerError(RuntimeError):
    """A worker process of a distributed stage failed; ``rank`` names it (the stage saves nothing)."""

    def __init__(self, rank: int, message: str) -> None:
        super().__init__(f"worker rank {rank} failed: {message}")
        self.rank = rank
        self.detail = message
