"""Device-resident batching with batched augmentation (no per-image Python in the loop).

A split is moved to the training device once as uint8; every batch is converted,
augmented (random crop with zero padding, horizontal flip, optional cutout) and
normalised there with a handful of tensor ops.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from wpnas.data.splits import ImageSplits, stratified_holdout
from wpnas.errors import ConfigError
from wpnas.seeds import stream_seed

logger = logging.getLogger(__name__)


def warn_oversize_batch(key: str, batch_size: int, num_images: int, split: str) -> bool:
    """Log a warning when ``batch_size`` (setting ``key``) exceeds the split: the batch is cut to the split."""
    if batch_size <= num_images:
        return False
    logger.warning(
        "%s: batch size %d is larger than the %s split (%d images); each batch holds all %d images instead",
        key, batch_size, split, num_images, num_images,
    )
    return True


@dataclass(frozen=True)
class AugmentConfig:
    """Standard CIFAR augmentation; set a field to 0/false to disable it."""

    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0

    def __post_init__(self) -> None:
        if self.crop_padding < 0 or self.cutout < 0:
            raise ConfigError(f"augment: crop_padding and cutout must be >= 0, got {self}")


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-sample random crop of a zero-padded batch (NCHW), same output size."""
    if padding <= 0:
        return x
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
    ox = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
    rows = (oy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    mask = torch.rand((x.shape[0], 1, 1, 1), device=x.device, generator=generator) < 0.5
    return torch.where(mask, x.flip(3), x)


def cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero one ``size`` x ``size`` square per image (centre uniform, clipped at borders)."""
    if size <= 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b, 1, 1), device=x.device, generator=generator)
    cx = torch.randint(0, w, (b, 1, 1), device=x.device, generator=generator)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    half = size // 2
    inside = (ys >= cy - half) & (ys < cy - half + size) & (xs >= cx - half) & (xs < cx - half + size)
    return x * (~inside).unsqueeze(1).to(x.dtype)


class DeviceBatches:
    """Iterate normalised (optionally augmented) batches of one split on one device."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str = "cpu",
        batch_size: int = 64,
        shuffle: bool = True,
        augment: AugmentConfig | None = None,
        drop_last: bool = False,
        seed: int = 0,
        channels_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size: {batch_size} must be >= 1")
        if images.dtype != torch.uint8:
            raise ConfigError(f"DeviceBatches expects uint8 images, got {images.dtype}")
        if images.shape[0] == 0:
            raise ConfigError("DeviceBatches got an empty split")
        self.device = torch.device(device)
        self.images = images.to(self.device, non_blocking=True)
        self.labels = labels.to(self.device, non_blocking=True)
        c = images.shape[1]
        if len(mean) != c or len(std) != c:
            raise ConfigError(f"normalisation has {len(mean)} means / {len(std)} stds for {c}-channel images")
        self.mean = torch.tensor(mean, device=self.device, dtype=torch.float32).view(1, c, 1, 1)
        self.inv_std = 1.0 / torch.tensor(std, device=self.device, dtype=torch.float32).view(1, c, 1, 1)
        self.batch_size = int(min(batch_size, images.shape[0]))
        self.shuffle = shuffle
        self.augment = augment
        self.drop_last = drop_last
        self.channels_last = channels_last
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    @classmethod
    def from_splits(
        cls,
        splits: ImageSplits,
        split: str,
        device: torch.device | str,
        batch_size: int,
        train: bool,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        channels_last: bool = False,
        limit: int | None = None,
        shuffle: bool | None = None,
    ) -> DeviceBatches:
        """Batches of one split; ``train`` shuffles, augments and drops the ragged last batch.

        ``shuffle`` (default: ``train``) alone gives random class-mixed batches without
        augmentation: what BN recalibration needs (a split may be stored ordered by class).
        """
        x, y = splits.split(split)
        if limit is not None and limit < x.shape[0]:
            # A class-balanced subset, fixed by the seed (splits can be ordered by class).
            _, keep = stratified_holdout(y.numpy(), limit, stream_seed(seed, "batches.limit"))
            keep_t = torch.from_numpy(keep)
            x, y = x[keep_t], y[keep_t]
        return cls(
            x,
            y,
            splits.mean,
            splits.std,
            device=device,
            batch_size=batch_size,
            shuffle=train if shuffle is None else shuffle,
            augment=augment if train else None,
            drop_last=train and x.shape[0] > batch_size,
            seed=seed,
            channels_last=channels_last,
        )

    def __len__(self) -> int:
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255.0)
        aug = self.augment
        if aug is not None:
            x = random_crop(x, aug.crop_padding, self.generator)
            if aug.flip:
                x = random_flip(x, self.generator)
        x = (x - self.mean) * self.inv_std
        if aug is not None and aug.cutout:
            x = cutout(x, aug.cutout, self.generator)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.images.shape[0]
        if self.shuffle:
            order = torch.randperm(n, device=self.device, generator=self.generator)
        else:
            order = torch.arange(n, device=self.device)
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            idx = order[start : start + self.batch_size]
            yield self.transform(self.images[idx]), self.labels[idx]

    def forever(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless stream of batches, reshuffled each pass (for step-based loops)."""
        while True:
            yield from self

    def take(self, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``count`` batches of a fresh pass (e.g. for BN recalibration)."""
        out = []
        for batch in self:
            if len(out) >= count:
                break
            out.append(batch)
        return out
