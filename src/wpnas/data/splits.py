"""The ``image_splits`` artifact: train / valid / test uint8 images, labels and statistics.

Images are kept as uint8 NCHW tensors (a few hundred MB for CIFAR at most) so a stage can
put a whole split on the training device once and batch it there. The valid split is
carved from the training images; the test split is never used for search decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from wpnas.config import fraction_or_count
from wpnas.errors import ConfigError, DataError
from wpnas.fingerprint import record

SPLITS = ("train", "valid", "test")


@dataclass
class ImageSplits:
    train_x: torch.Tensor
    train_y: torch.Tensor
    valid_x: torch.Tensor
    valid_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in SPLITS:
            x, y = getattr(self, f"{name}_x"), getattr(self, f"{name}_y")
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise DataError(f"{name} images must be a uint8 NCHW tensor, got {x.dtype} {tuple(x.shape)}")
            if y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise DataError(f"{name} labels must be int64 of length {x.shape[0]}, got {y.dtype} {tuple(y.shape)}")
        shapes = {tuple(getattr(self, f"{n}_x").shape[1:]) for n in SPLITS if getattr(self, f"{n}_x").shape[0]}
        if len(shapes) > 1:
            raise DataError(f"splits have different image shapes: {sorted(shapes)}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; expected one of {list(SPLITS)}")
        return getattr(self, f"{name}_x"), getattr(self, f"{name}_y")

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "classes": len(self.classes),
            "input_shape": list(self.input_shape),
            "train": int(self.train_x.shape[0]),
            "valid": int(self.valid_x.shape[0]),
            "test": int(self.test_x.shape[0]),
        }

    def fingerprint(self) -> dict[str, Any]:
        """The fingerprint record of these splits: source, split settings, input shape,
        normalisation, classes and split sizes (what a stage trained on them depends on)."""
        return record({
            "source": self.source,
            "split": self.meta,
            "input_shape": list(self.input_shape),
            # rounded: the same statistics computed along another float path differ in the last digits
            "mean": [round(float(v), 6) for v in self.mean],
            "std": [round(float(v), 6) for v in self.std],
            "classes": list(self.classes),
            "sizes": {n: int(getattr(self, f"{n}_x").shape[0]) for n in SPLITS},
        })

    def to_checkpoint(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"{n}_{k}": getattr(self, f"{n}_{k}") for n in SPLITS for k in ("x", "y")}
        out.update(
            classes=list(self.classes), mean=list(self.mean), std=list(self.std), source=self.source, meta=self.meta
        )
        out["kind"] = "image_splits"
        return out

    @classmethod
    def coerce(cls, data: ImageSplits | dict[str, Any]) -> ImageSplits:
        """Accept the object itself (in-memory runs) or its checkpoint dict (from the catalog)."""
        return data if isinstance(data, cls) else cls.from_checkpoint(data)

    @classmethod
    def from_checkpoint(cls, data: dict[str, Any]) -> ImageSplits:
        if data.get("kind") != "image_splits":
            raise DataError("this file does not hold image splits (kind != 'image_splits')")
        kwargs = {f"{n}_{k}": data[f"{n}_{k}"] for n in SPLITS for k in ("x", "y")}
        return cls(
            **kwargs,
            classes=list(data["classes"]),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            source=str(data["source"]),
            meta=dict(data.get("meta", {})),
        )


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images on the [0, 1] scale."""
    if images.shape[0] == 0:
        raise DataError("cannot compute normalisation statistics of an empty training split")
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    count = 0
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].to(torch.float64) / 255.0
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def check_split_size(value: float | int, key: str) -> None:
    """A split size is a fraction in (0, 1) or a whole count >= 1: 1.5 or 0 is neither."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        0 < value < 1 or (value >= 1 and float(value).is_integer())
    ):
        raise ConfigError(f"{key}: {value!r} is neither a fraction in (0, 1) nor a whole count of images >= 1")


def resolve_count(size: float | int, total: int, what: str) -> int:
    """A split size given as a fraction in (0, 1) or as a whole count >= 1."""
    check_split_size(size, what)
    count = fraction_or_count(size, total)
    if count >= total:
        raise DataError(f"{what}: {size!r} would leave no training images (only {total} available)")
    return count


def stratified_holdout(labels: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held_out): ``count`` images held out, class proportions preserved.

    Reproducible from ``seed``; the two index sets are disjoint and cover every image.
    """
    rng = np.random.default_rng(seed)
    n = len(labels)
    if count == 0:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    classes, inverse = np.unique(labels, return_inverse=True)
    quota = np.floor(np.bincount(inverse) * count / n).astype(int)
    # Hand out the remainder to the classes with the largest fractional parts (seeded ties).
    remainder = count - quota.sum()
    frac = np.bincount(inverse) * count / n - quota
    order = np.lexsort((rng.random(len(classes)), -frac))
    quota[order[:remainder]] += 1
    held = []
    for c in range(len(classes)):
        idx = np.flatnonzero(inverse == c)
        held.append(rng.permutation(idx)[: quota[c]])
    held_idx = np.sort(np.concatenate(held))
    mask = np.ones(n, dtype=bool)
    mask[held_idx] = False
    return np.flatnonzero(mask), held_idx
