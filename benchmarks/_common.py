"""Helpers shared by the benchmark scripts (data location, timing, device description)."""

from __future__ import annotations

import json
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from wpnas.config import describe_device  # noqa: F401  (re-exported for the scripts)

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared" / "data").resolve()
NB201_TABLE = SHARED / "nb201" / "nb201_cifar10.csv"
SSS_TABLE = SHARED / "nats_sss" / "nats_sss_cifar10.csv"
CIFAR_TARBALL = SHARED / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"


def emit(line: dict[str, Any], report: dict[str, Any], path: str | None) -> None:
    """Print one result as a JSON line and rewrite the whole ``report`` at ``path`` (if given),
    so that a run cut short by its time limit still leaves what it measured."""
    print(json.dumps(line), flush=True)
    if path:
        Path(path).write_text(json.dumps(report, indent=1))


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


class Dispatches(TorchDispatchMode):
    """Counts the ops that reach a device kernel (views and allocations left out) and host syncs."""

    FREE = {"empty", "empty_strided", "_unsafe_view", "alias", "detach"}

    def __init__(self) -> None:
        super().__init__()
        self.kernels = 0
        self.syncs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        returns = func._schema.returns
        view = bool(returns) and returns[0].alias_info is not None and not returns[0].alias_info.is_write
        if func is torch.ops.aten._local_scalar_dense.default:
            self.syncs += 1
        elif not view and func._schema.name.split("::")[-1] not in self.FREE:
            self.kernels += 1
        return func(*args, **(kwargs or {}))
