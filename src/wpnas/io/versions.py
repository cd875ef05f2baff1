"""Old versions of versioned artifacts, found and removed on request (``kedro prune``).

Every catalog entry is versioned: a run writes ``<filepath>/<version>/<file name>``, and
nothing is ever deleted, so ``data/`` grows by every run's image splits and checkpoints.
:func:`stale_versions` lists, per artifact, the version folders beyond the newest ``keep``
(version names sort in time order: they are the runs' UTC start times); only folders named
like a Kedro version are ever considered, so nothing else under ``data/`` is touched.
:func:`remove_versions` deletes what was listed.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from wpnas.errors import ConfigError

#: Kedro's save-version format: the UTC time with dots, e.g. ``2026-11-28T10.00.00.000Z``.
VERSION_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}\.\d{2}\.\d{2}\.\d{3}Z$")


@dataclass(frozen=True)
class StaleVersion:
    """One version folder of one artifact that pruning would remove."""

    artifact: Path
    version: str
    size_bytes: int

    @property
    def path(self) -> Path:
        return self.artifact / self.version


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


def stale_versions(artifacts: Iterable[Path], keep: int) -> list[StaleVersion]:
    """Version folders of ``artifacts`` (versioned catalog file paths) beyond the newest ``keep``
    of each, oldest first. Artifacts never saved, and entries that are not version folders,
    are left out."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ConfigError(f"prune: --keep {keep!r}; expected an integer >= 1 (the newest versions kept per artifact)")
    stale = []
    for artifact in dict.fromkeys(Path(a) for a in artifacts):
        if not artifact.is_dir():
            continue
        found = sorted(p.name for p in artifact.iterdir() if p.is_dir() and VERSION_NAME.match(p.name))
        for version in found[: max(len(found) - keep, 0)]:
            stale.append(StaleVersion(artifact, version, _size(artifact / version)))
    return stale


def remove_versions(stale: Iterable[StaleVersion]) -> int:
    """Delete the listed version folders; returns the bytes freed."""
    freed = 0
    for item in stale:
        if not VERSION_NAME.match(item.version) or item.path.parent != item.artifact:
            raise ConfigError(f"prune: {str(item.path)!r} is not a version folder; refusing to delete it")
        if item.path.is_dir():
            shutil.rmtree(item.path)
            freed += item.size_bytes
    return freed
