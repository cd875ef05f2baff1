"""ImageNet-style image folders streamed from disk, for training from scratch (paper step 5).

The search stages keep a whole split on the device (:mod:`wpnas.data.batching`); ImageNet
does not fit that way. An evaluation on ImageNet (or any large folder of JPEGs) instead
decodes each batch from disk with a ``torch.utils.data.DataLoader`` and the standard
ImageNet transforms:

* train: ``RandomResizedCrop(image_size)`` (scale 0.08-1, aspect 3/4-4/3), horizontal flip;
* test:  resize the shorter side to ``resize``, centre crop ``image_size``;
* both:  to [0, 1], then normalised with the ImageNet channel statistics.

Layout: ``<root>/<train_dir>/<class>/*.jpg`` and ``<root>/<test_dir>/<class>/*.jpg`` (the
usual ``train/`` and ``val/`` of an unpacked ImageNet). Order and augmentation follow one
seeded generator, so a run resumed at an epoch boundary sees the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wpnas.errors import ConfigError, DataError
from wpnas.fingerprint import record

#: ImageNet channel statistics (torchvision's), the normalisation of every ImageNet model.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class StreamedFolderConfig:
    """``evaluation.data``: an image folder streamed from disk with the ImageNet transforms.

    root:        folder holding ``train_dir`` and ``test_dir``, each with one sub-folder per class.
    image_size:  training crop and test centre crop (224 for ImageNet).
    resize:      shorter side before the test centre crop (256 for ImageNet).
    workers:     DataLoader worker processes decoding JPEGs (0: in the training process).
    """

    root: str
    train_dir: str = "train"
    test_dir: str = "val"
    image_size: int = 224
    resize: int = 256
    workers: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.root, str) or not self.root:
            raise ConfigError(f"evaluation.data.root: {self.root!r} must be a folder path")
        if self.image_size < 8:
            raise ConfigError(f"evaluation.data.image_size: {self.image_size} must be >= 8")
        if self.resize < self.image_size:
            raise ConfigError(
                f"evaluation.data.resize: {self.resize} must be >= image_size ({self.image_size}): the test "
                "image is resized to it, then centre-cropped to image_size"
            )
        if self.workers < 0:
            raise ConfigError(f"evaluation.data.workers: {self.workers} must be >= 0")


class StreamedFolder:
    """The train and test folders of ``cfg``, listed (not decoded) and checked at construction.

    It offers what training from scratch reads from :class:`~wpnas.data.splits.ImageSplits`
    (classes, input shape, normalisation, a fingerprint) and :meth:`batches` in place of
    device-resident batches. There is no valid split.
    """

    def __init__(self, cfg: StreamedFolderConfig) -> None:
        from wpnas.data.sources import list_class_tree

        self.cfg = cfg
        root = Path(cfg.root).expanduser()
        folders = {}
        for split, name in (("train", cfg.train_dir), ("test", cfg.test_dir)):
            folder = root / name
            if not folder.is_dir():
                raise DataError(
                    f"evaluation.data: {str(folder)!r} is not a folder; expected {str(root)!r} to hold "
                    f"{cfg.train_dir}/<class>/*.jpg and {cfg.test_dir}/<class>/*.jpg (evaluation.data.train_dir, "
                    "test_dir)"
                )
            tree = list_class_tree(folder)
            if not tree:
                raise DataError(f"evaluation.data: {str(folder)!r} has no images in class sub-folders")
            folders[split] = tree
        if sorted(folders["train"]) != sorted(folders["test"]):
            only_train = sorted(set(folders["train"]) - set(folders["test"]))[:5]
            only_test = sorted(set(folders["test"]) - set(folders["train"]))[:5]
            raise DataError(
                f"evaluation.data: {str(root)!r} train and test class lists differ (only in train: {only_train}, "
                f"only in test: {only_test})"
            )
        self.classes: list[str] = sorted(folders["train"])
        if len(self.classes) < 2:
            raise DataError(f"evaluation.data: {str(root)!r} has {len(self.classes)} class; need at least 2")
        self._samples = {
            split: [(str(path), label) for label, name in enumerate(self.classes) for path in tree[name]]
            for split, tree in folders.items()
        }
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        self.source = f"streamed image folder {str(root)}"

    # -- what training from scratch reads ------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return 3

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (3, self.cfg.image_size, self.cfg.image_size)

    def size(self, split: str) -> int:
        return len(self._samples.get(split, ()))

    def fingerprint(self) -> dict[str, Any]:
        return record({
            "source": self.source,
            "transforms": {"image_size": self.cfg.image_size, "resize": self.cfg.resize},
            "classes": list(self.classes),
            "sizes": {split: len(samples) for split, samples in self._samples.items()},
        })

    def transform(self, train: bool) -> Any:
        from torchvision import transforms as T

        size = self.cfg.image_size
        if train:
            steps = [T.RandomResizedCrop(size), T.RandomHorizontalFlip()]
        else:
            steps = [T.Resize(self.cfg.resize), T.CenterCrop(size)]
        return T.Compose([*steps, T.ToTensor(), T.Normalize(self.mean, self.std)])

    def batches(
        self, split: str, device: torch.device | str, batch_size: int, train: bool, seed: int = 0,
        channels_last: bool = False, limit: int | None = None,
    ) -> StreamedBatches:
        """Batches of ``split`` decoded from disk (``train``: shuffled, augmented, ragged batch dropped)."""
        if split not in self._samples:
            raise DataError(f"streamed image folder has no {split!r} split; it has {sorted(self._samples)}")
        samples = self._samples[split]
        if limit is not None and limit < len(samples):
            generator = torch.Generator().manual_seed(int(seed))
            keep = torch.randperm(len(samples), generator=generator)[:limit].sort().values
            samples = [samples[i] for i in keep.tolist()]
        return StreamedBatches(samples, self.transform(train), device, batch_size, shuffle=train,
                               drop_last=train and len(samples) > batch_size, seed=seed,
                               workers=self.cfg.workers, channels_last=channels_last)


class _Files(torch.utils.data.Dataset):
    def __init__(self, samples: list[tuple[str, int]], transform: Any) -> None:
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.samples[index]
        try:
            with Image.open(path) as handle:
                image = handle.convert("RGB")
        except Exception as err:
            raise DataError(f"cannot decode image {path!r}: {err}") from err
        return self.transform(image), label


class StreamedBatches:
    """Iterate (images, labels) batches on ``device``; ``generator`` fixes order and augmentation."""

    def __init__(
        self, samples: list[tuple[str, int]], transform: Any, device: torch.device | str, batch_size: int,
        shuffle: bool, drop_last: bool, seed: int, workers: int, channels_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size: {batch_size} must be >= 1")
        if not samples:
            raise DataError("streamed batches got an empty split")
        self.device = torch.device(device)
        self.batch_size = int(min(batch_size, len(samples)))
        self.drop_last = drop_last
        self.channels_last = channels_last
        self.generator = torch.Generator()
        self.generator.manual_seed(int(seed))
        self._count = len(samples)
        self.loader = torch.utils.data.DataLoader(
            _Files(samples, transform), batch_size=self.batch_size, shuffle=shuffle, drop_last=drop_last,
            num_workers=workers, generator=self.generator, pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    @property
    def num_images(self) -> int:
        return self._count

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)
