"""Torch checkpoints written atomically and loadable on any device.

A checkpoint is a plain dict (state dicts, tensors, numbers, strings, metadata), written
through :func:`wpnas.io.atomic.atomic_write`: an interrupted or failing save never leaves a
half-written file and never destroys the previous good one; a save that fails for want of
space (``ENOSPC``, or torch's ``unexpected pos`` from a short write) raises
:class:`~wpnas.errors.StorageError` naming the path, the bytes free and the bytes written so
far. :func:`check_output_location` is the matching up-front check: the folder is writable
and its disk has room for an estimated size.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from wpnas.errors import CheckpointError, StorageError
from wpnas.io.atomic import atomic_write, free_bytes, make_folders, mib, nearest_existing


def save_checkpoint(obj: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` through :func:`~wpnas.io.atomic.atomic_write`; a full disk raises :class:`StorageError`."""
    if not isinstance(obj, dict):
        raise TypeError(f"a checkpoint must be a dict, got {type(obj).__name__}")
    with atomic_write(path, what="checkpoint") as handle:
        torch.save(obj, handle)


def check_output_location(path: str | Path, needed_bytes: int, what: str) -> None:
    """Fail now if ``path`` cannot be written later: its folder must be creatable and writable,
    and its disk must have ``needed_bytes`` free. ``what`` names the output in the message.

    The folder is created (as a save would) and probed with a real temporary file, so the
    check agrees with what the save will meet (permissions, read-only mounts, ACLs, root);
    the folders the check created are removed again."""
    folder = Path(path).parent
    created: list[Path] = []
    try:
        created = make_folders(folder)
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
    for made in reversed(created):
        with contextlib.suppress(OSError):
            made.rmdir()
    if free is not None and free < needed_bytes:
        raise StorageError(
            f"{what}: not enough free space in {str(folder)!r}: the output needs about {mib(needed_bytes)}, "
            f"only {mib(free)} free; free some space or point the output at another disk"
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
        per_disk.setdefault(os.stat(nearest_existing(folder)).st_dev, []).append((folder, needed, what))
    for items in per_disk.values():
        total = sum(n for _, n, _ in items)
        free = free_bytes(items[0][0])
        if len(items) > 1 and free is not None and free < total:
            parts = ", ".join(f"{what} ~{mib(n)}" for _, n, what in items)
            raise StorageError(
                f"not enough free space for this run's outputs on the disk of {str(items[0][0])!r}: they need "
                f"about {mib(total)} together ({parts}), only {mib(free)} free; free some space or point "
                "some outputs at another disk"
            )
