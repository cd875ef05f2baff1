"""Helpers shared by the benchmark scripts (data location, timing, device description)."""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

from wpnas.config import describe_device  # noqa: F401  (re-exported for the scripts)

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared" / "data").resolve()
NB201_TABLE = SHARED / "nb201" / "nb201_cifar10.csv"
SSS_TABLE = SHARED / "nats_sss" / "nats_sss_cifar10.csv"
CIFAR_TARBALL = SHARED / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"


def cifar10_tree(explicit: str | None) -> Path:
    """An ImageFolder tree of CIFAR-10: ``explicit`` or the shared JPEG tarball unpacked once."""
    if explicit:
        root = Path(explicit)
        if root.suffixes[-2:] == [".tar", ".gz"]:
            return unpack(root)
        return root
    if not CIFAR_TARBALL.exists():
        raise SystemExit(f"no CIFAR-10 found: pass --data or provide {CIFAR_TARBALL}")
    return unpack(CIFAR_TARBALL)


def unpack(tarball: Path) -> Path:
    target = Path(tempfile.gettempdir()) / "wpnas-cifar10-jpeg"
    if not (target / "train").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as tar:
            tar.extractall(target, filter="data")
    if (target / "train").is_dir():
        return target
    return next(p for p in target.iterdir() if (p / "train").is_dir())
