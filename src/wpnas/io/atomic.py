"""The one way the project writes a file: atomically, and blaming a full disk by name.

:func:`atomic_write` opens a temporary sibling of the target (``.<name>.<random>.tmp`` in the
same folder, so the rename cannot cross a disk), and only after the caller has written it
completely is it flushed, ``fsync``-ed and renamed over the target. A failure at any point
(an exception, a full disk, Ctrl-C) removes the temporary file, leaves any previous file at
the target untouched, and removes the folders the write created (a versioned artifact's
``<filepath>/<version>/`` folder), so no new version is left behind. A write that fails for
want of space raises :class:`~wpnas.errors.StorageError` naming the file, the bytes written
and the bytes free.

A process killed with SIGKILL in the middle of a write leaves its temporary file behind;
:func:`remove_stale_temporaries` removes such files (a run calls it on its output folders
while it holds the project folder's lock, when no other write can be in flight).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from wpnas.errors import StorageError

#: Suffix of the temporary files of :func:`atomic_write` (their name starts with a dot).
TMP_SUFFIX = ".tmp"

#: Below this many free bytes a failed write is blamed on the disk, whatever the error says.
_NEARLY_FULL = 1 << 20

_SHORT_WRITE_MARKERS = ("unexpected pos", "no space left", "disk quota")

#: ``open`` keywords a text write may pass on (fsspec-style callers pass others, ignored).
_TEXT_ARGS = ("encoding", "errors", "newline")


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", what: str = "file", **open_args: Any) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path``; fsync and rename it over ``path`` only on success.

    ``mode`` is a write mode (``"w"`` / ``"wb"``); ``what`` names the file in a "no space
    left" error; ``encoding`` / ``errors`` / ``newline`` are passed to ``open`` in text mode."""
    if "r" in mode or "a" in mode or "+" in mode:
        raise ValueError(f"atomic_write writes a whole new file; mode {mode!r} is not supported")
    path = Path(path)
    created = make_folders(path.parent)
    kwargs = {k: v for k, v in open_args.items() if k in _TEXT_ARGS and "b" not in mode}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, mode.replace("x", "w"), **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException as err:
        written = _size(tmp)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        for folder in reversed(created):  # deepest first; only while empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        problem = _space_problem(err, path, written, what) if isinstance(err, (OSError, RuntimeError)) else None
        if problem is None:
            raise
        raise StorageError(problem) from err


def make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return the ones created (outermost first)."""
    missing = []
    current = Path(os.path.abspath(folder))
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    folder.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _space_problem(err: BaseException, path: Path, written: int, what: str) -> str | None:
    """The "no space left" message for a failed write, or None when the failure is something else."""
    free = free_bytes(path.parent)
    no_space = isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)
    short_write = any(marker in str(err).lower() for marker in _SHORT_WRITE_MARKERS)
    if not (no_space or short_write or (free is not None and free < _NEARLY_FULL)):
        return None
    free_text = "unknown" if free is None else f"{mib(free)} free"
    return (
        f"no space left on the device writing {what} {str(path)!r}: {mib(written)} written before the "
        f"failure, {free_text} in {str(path.parent)!r} ({type(err).__name__}: {err}). Free some space or point "
        "this output at another disk; the previous file at that path, if any, is untouched and no partial file "
        "is left"
    )


def mib(n: int) -> str:
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


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is named like a temporary file of :func:`atomic_write`."""
    return path.name.startswith(".") and path.name.endswith(TMP_SUFFIX) and path.name.count(".") >= 3


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove :func:`atomic_write`'s temporary files in ``folder`` and in its sub-folders (a
    versioned artifact's version folders), and the sub-folders this leaves empty. Only for a
    caller that knows no write is in flight (a run holding the project folder's lock).
    Returns the files removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed: list[Path] = []
    for current in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        stale = [p for p in current.iterdir() if p.is_file() and is_temporary(p)]
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
        if stale and current != folder:
            with contextlib.suppress(OSError):
                current.rmdir()  # only when empty: a version folder whose one write was killed
    return removed
