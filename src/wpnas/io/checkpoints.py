"""Torch checkpoints written atomically and loadable on any device.

A checkpoint is a plain dict (state dicts, tensors, numbers, strings, metadata). It is
first written to a temporary file in the target folder and then renamed over the
target, so an interrupted or failing save never leaves a half-written file and never
destroys the previous good one.

A save that fails for want of space (``ENOSPC``, or torch's ``unexpected pos`` from a
short write) raises :class:`~wpnas.errors.StorageError` naming the path, the bytes free
and the bytes written so far. :func:`check_output_location` is the matching up-front
check: the folder is writable and its disk has room for an estimated size.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch

from wpnas.errors import CheckpointError, StorageError


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path``; rename it over ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(obj: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_write`; a full disk raises :class:`StorageError`."""
    if not isinstance(obj, dict):
        raise TypeError(f"a checkpoint must be a dict, got {type(obj).__name__}")
    written = 0
    try:
        with atomic_write(path) as handle:
            try:
                torch.save(obj, handle)
            finally:
                with contextlib.suppress(OSError, ValueError):
                    written = handle.tell()
    except (OSError, RuntimeError) as err:
        problem = _space_problem(err, Path(path), written)
        if problem is None:
            raise
        raise StorageError(problem) from err


#: Below this many free bytes a failed write is blamed on the disk, whatever the error says.
_NEARLY_FULL = 1 << 20

_SHORT_WRITE_MARKERS = ("unexpected pos", "no space left", "disk quota")


def _space_problem(err: BaseException, path: Path, written: int) -> str | None:
    """The "no space left" message for a failed save, or None when the failure is something else."""
    free = free_bytes(path.parent)
    no_space = isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)
    short_write = any(marker in str(err).lower() for marker in _SHORT_WRITE_MARKERS)
    if not (no_space or short_write or (free is not None and free < _NEARLY_FULL)):
        return None
    free_text = "unknown" if free is None else f"{_mib(free)} free"
    return (
        f"no space left on the device writing checkpoint {str(path)!r}: {_mib(written)} written before the "
        f"failure, {free_text} in {str(path.parent)!r} ({type(err).__name__}: {err}). Free some space or point "
        "this output at another disk; the previous file at that path, if any, is untouched"
    )


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def free_bytes(folder: str | Path) -> int | None:
    """Free bytes on the disk holding ``folder`` (or its nearest existing ancestor); None if unknown."""
    existing = nearest_existing(Path(folder))
    try:
        return shutil.disk_usage(existing).free
    except OSError:
        return None


def nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_location(path: str | Path, needed_bytes: int, what: str) -> None:
    """Fail now if ``path`` cannot be written later: its folder must be creatable and writable,
    and its disk must have ``needed_bytes`` free. ``what`` names the output in the message.

    The folder is created (as a save would) and probed with a real temporary file, so the
    check agrees with what the save will meet (permissions, read-only mounts, ACLs, root)."""
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".wpnas-write-probe.{uuid.uuid4().hex}"
        with open(probe, "wb"):
            pass
        probe.unlink()
    except OSError as err:
        existing = nearest_existing(folder)
        raise StorageError(
            f"{what}: output folder {str(folder)!r} is not writable ({type(err).__name__}: {err.strerror or err}; "
            f"nearest existing folder {str(existing)!r}); fix its permissions or point the output elsewhere "
            "before training, not after"
        ) from None
    free = free_bytes(folder)
    if free is not None and free < needed_bytes:
        raise StorageError(
            f"{what}: not enough free space in {str(folder)!r}: the output needs about {_mib(needed_bytes)}, "
            f"only {_mib(free)} free; free some space or point the output at another disk"
        )


def load_checkpoint(
    path: str | Path,
    map_location: str | torch.device | Callable | None = "cpu",
    weights_only: bool = True,
) -> dict[str, Any]:
    """Load a checkpoint (onto the CPU by default, whatever device wrote it)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as err:  # torch raises many types for corrupt files
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or not a torch checkpoint ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {type(obj).__name__}, expected a dict")
    return obj


def check_output_locations(outputs: list[tuple[str | Path, int, str]]) -> None:
    """:func:`check_output_location` for several ``(path, needed_bytes, what)`` outputs; outputs that
    share a disk must fit on it together."""
    per_disk: dict[int, list[tuple[Path, int, str]]] = {}
    for path, needed, what in outputs:
        check_output_location(path, needed, what)
        folder = Path(path).parent
        per_disk.setdefault(os.stat(folder).st_dev, []).append((folder, needed, what))
    for items in per_disk.values():
        total = sum(n for _, n, _ in items)
        free = free_bytes(items[0][0])
        if len(items) > 1 and free is not None and free < total:
            parts = ", ".join(f"{what} ~{_mib(n)}" for _, n, what in items)
            raise StorageError(
                f"not enough free space for this run's outputs on the disk of {str(items[0][0])!r}: they need "
                f"about {_mib(total)} together ({parts}), only {_mib(free)} free; free some space or point "
                "some outputs at another disk"
            )
