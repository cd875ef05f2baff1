"""Where images come from: the embedded digits, torchvision CIFAR, or an image-folder tree.

Every source ends as :class:`ImageSplits` with the same seeded, stratified carving of the
valid split from the training images, so a search behaves the same on any dataset.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wpnas.data.splits import ImageSplits, channel_stats, check_split_size, resolve_count, stratified_holdout
from wpnas.errors import ConfigError, DataError
from wpnas.progress import Progress
from wpnas.seeds import fixed_seed, stream_seed

logger = logging.getLogger(__name__)

SOURCES = ("digits", "cifar10", "cifar100", "image_folder")
#: source -> (channels, native image size, classes); None: the image folder's own (its files, its sub-folders)
SOURCE_FACTS: dict[str, tuple[int, int | None, int | None]] = {
    "digits": (1, 8, 10), "cifar10": (3, 32, 10), "cifar100": (3, 32, 100), "image_folder": (3, None, None),
}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class DataConfig:
    """Which images to load and how to split them.

    ``valid_size`` / ``test_size`` are fractions in (0, 1) or image counts (>= 1).
    NAS-Bench-201's ``cifar10-valid`` split holds out half of the training set (0.5).
    ``train_limit`` keeps a stratified subset of the training images (CPU budgets).
    """

    source: str = "digits"
    root: str = "data/01_raw"
    download: bool = False
    image_size: int | None = None
    valid_size: float = 0.5
    test_size: float = 0.2
    train_limit: int | None = None
    test_limit: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"data.source: unknown dataset {self.source!r}; expected one of {list(SOURCES)}")
        if self.image_size is not None and self.image_size < 4:
            raise ConfigError(f"data.image_size: {self.image_size} is too small; expected >= 4 or null")
        for name in ("valid_size", "test_size"):
            check_split_size(getattr(self, name), f"data.{name}")
        for name in ("train_limit", "test_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"data.{name}: {value} must be a positive count or null")


def expected_input_shape(cfg: DataConfig) -> tuple[int, int, int] | None:
    """The image shape ``cfg`` will produce, when it is known without loading anything (an image
    folder at its own size: None)."""
    channels, native, _ = SOURCE_FACTS[cfg.source]
    size = cfg.image_size or native
    return None if size is None else (channels, size, size)


def expected_num_classes(cfg: DataConfig) -> int | None:
    """The classes ``cfg`` will produce, known without loading: the source's, or an image folder's
    class sub-folders (of ``train/`` when it has one; listed, not decoded); None when the folder is absent."""
    classes = SOURCE_FACTS[cfg.source][2]
    if classes is not None:
        return classes
    root = Path(cfg.root)
    root = root / "train" if (root / "train").is_dir() else root
    if not root.is_dir():
        return None
    return sum(1 for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def check_data_source(cfg: DataConfig) -> None:
    """Fail fast on paths that cannot work, before any loading."""
    if cfg.source == "image_folder":
        root = Path(cfg.root)
        if not root.is_dir():
            raise DataError(
                f"data.root: image folder {str(root)!r} does not exist; expected a folder with "
                "train/<class>/* and test/<class>/* (or <class>/* plus data.test_size)"
            )
    elif cfg.source in ("cifar10", "cifar100") and not cfg.download:
        folder = Path(cfg.root) / _CIFAR_FOLDERS[cfg.source]
        if not folder.is_dir():
            raise DataError(_cifar_missing_message(cfg))


def build_image_splits(cfg: DataConfig) -> ImageSplits:
    """Load the configured source and return seeded train / valid / test splits."""
    check_data_source(cfg)
    if cfg.source == "digits":
        train_x, train_y, test_x, test_y, classes = _load_digits(cfg)
    elif cfg.source in ("cifar10", "cifar100"):
        train_x, train_y, test_x, test_y, classes = _load_cifar(cfg)
    else:
        train_x, train_y, test_x, test_y, classes = _load_image_folder(cfg)
    return _finish(cfg, train_x, train_y, test_x, test_y, classes)


def _finish(
    cfg: DataConfig,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    classes: list[str],
) -> ImageSplits:
    if cfg.image_size is not None:
        train_x = resize_uint8(train_x, cfg.image_size)
        test_x = resize_uint8(test_x, cfg.image_size)
    labels = train_y.numpy()
    if cfg.train_limit is not None and cfg.train_limit < len(labels):
        _, keep = stratified_holdout(labels, cfg.train_limit, stream_seed(cfg.seed, "data.train_limit"))
        train_x, train_y, labels = train_x[keep], train_y[keep], labels[keep]
    if cfg.test_limit is not None and cfg.test_limit < len(test_y):
        _, keep = stratified_holdout(test_y.numpy(), cfg.test_limit, stream_seed(cfg.seed, "data.test_limit"))
        test_x, test_y = test_x[keep], test_y[keep]
    n_valid = resolve_count(cfg.valid_size, len(labels), "data.valid_size")
    kept, held = stratified_holdout(labels, n_valid, stream_seed(cfg.seed, "data.valid_split"))
    # Store each split in a seeded random order: sources list images class by class, and
    # nothing downstream should depend on (or be hurt by) that order.
    rng = np.random.default_rng(stream_seed(cfg.seed, "data.order"))
    kept_t, held_t = torch.from_numpy(rng.permutation(kept)), torch.from_numpy(rng.permutation(held))
    test_order = torch.from_numpy(np.random.default_rng(fixed_seed("data.test_order")).permutation(len(test_y)))
    test_x, test_y = test_x[test_order], test_y[test_order]
    check_classes(cfg, classes, {"train": train_y[kept_t], "valid": train_y[held_t], "test": test_y})
    mean, std = channel_stats(train_x[kept_t])
    splits = ImageSplits(
        train_x=train_x[kept_t].contiguous(),
        train_y=train_y[kept_t].contiguous(),
        valid_x=train_x[held_t].contiguous(),
        valid_y=train_y[held_t].contiguous(),
        test_x=test_x.contiguous(),
        test_y=test_y.contiguous(),
        classes=classes,
        mean=mean,
        std=std,
        source=cfg.source,
        meta={"seed": cfg.seed, "valid_size": cfg.valid_size, "root": cfg.root, "image_size": cfg.image_size},
    )
    logger.info("image splits: %s", splits.summary())
    return splits


def _describe_source(cfg: DataConfig) -> str:
    return f"data.source {cfg.source!r}" + (f" at {cfg.root!r}" if cfg.source == "image_folder" else "")


#: Fewest images a split may hold: two, of two classes (one image scores 0 or 100 %, one class
#: trains to loss 0, and neither ranks architectures).
MIN_SPLIT_IMAGES = 2


def split_size_keys(cfg: DataConfig) -> dict[str, str]:
    """The setting that decides each split's size (named when a split is too small)."""
    return {
        "train": "data.train_limit" if cfg.train_limit is not None else "data.valid_size",
        "valid": "data.valid_size",
        "test": "data.test_limit" if cfg.test_limit is not None else "data.test_size",
    }


def check_classes(cfg: DataConfig, classes: list[str], labels: dict[str, torch.Tensor]) -> None:
    """What a search needs of the splits, checked before any training, each failure naming its key:

    - two classes in the source (one trains to loss 0 and 100 % accuracy, and every
      architecture ranks alike);
    - every split at least :data:`MIN_SPLIT_IMAGES` images of two classes or more;
    - every class of the source at least one training image (a class never trained on is
      guessed, and its accuracy says nothing about an architecture).
    """
    if len(classes) < 2:
        found = f"only one class, {classes[0]!r}" if classes else "no class"
        raise DataError(f"{_describe_source(cfg)} has {found}; classification needs at least 2 classes "
                        "(one sub-folder per class for an image folder)")
    keys = split_size_keys(cfg)
    for split, y in labels.items():
        key = keys[split]
        present = torch.unique(y)
        if y.numel() < MIN_SPLIT_IMAGES:
            raise DataError(
                f"{key} = {getattr(cfg, key.split('.')[1])!r} leaves the {split} split of {_describe_source(cfg)} "
                f"{y.numel()} image(s); every split needs at least {MIN_SPLIT_IMAGES} images of 2 classes or more"
            )
        if present.numel() == 1:
            raise DataError(
                f"{_describe_source(cfg)}: the {split} split holds a single class, {classes[int(present[0])]!r} "
                f"({y.numel()} images); classification needs at least 2 classes per split (check the class "
                f"folders and {key})"
            )
    if "train" not in labels:
        return
    counts = torch.bincount(labels["train"], minlength=len(classes))
    absent = [classes[i] for i in torch.nonzero(counts == 0).flatten().tolist()]
    if absent:
        key = keys["train"]
        raise DataError(
            f"{key} = {getattr(cfg, key.split('.')[1])!r} leaves {len(absent)} of the {len(classes)} classes of "
            f"{_describe_source(cfg)} without a training image ({', '.join(map(repr, absent[:5]))}"
            f"{', ...' if len(absent) > 5 else ''}); every class needs at least 1 image in the train split "
            f"({int(counts.sum())} images now)"
        )


def compare_stored_splits(cfg: DataConfig, splits: ImageSplits) -> tuple[list[str], dict[str, object]]:
    """How the ``data`` settings of a run disagree with stored image splits it reads (a stage run
    on its own reads the splits an earlier ``data_processing`` run made).

    Returns (refusals, used): a disagreement in the images themselves (source, size, folder) is a
    refusal, the stage would train on other images than its parameters (and MLflow) say; one in
    how they were split (``valid_size``, ``seed``) is returned in ``used`` (key: the value the
    splits were made with), to be recorded as what was actually used."""
    refusals: list[str] = []
    used: dict[str, object] = {}
    shape = "x".join(str(s) for s in splits.input_shape[1:])
    if splits.source != cfg.source:
        refusals.append(f"data.source = {cfg.source!r}, the stored splits hold {splits.source!r} images")
    if cfg.image_size is not None and tuple(splits.input_shape[1:]) != (cfg.image_size, cfg.image_size):
        refusals.append(f"data.image_size = {cfg.image_size}, the stored splits hold {shape} images")
    meta = splits.meta or {}
    if cfg.source == "image_folder" and splits.source == cfg.source and "root" in meta and meta["root"] != cfg.root:
        refusals.append(f"data.root = {cfg.root!r}, the stored splits come from {meta['root']!r}")
    for key in ("valid_size", "seed"):
        if key in meta and meta[key] != getattr(cfg, key):
            used[f"data.{key}"] = meta[key]
    return refusals, used


def resize_uint8(images: torch.Tensor, size: int, chunk: int = 2048) -> torch.Tensor:
    """Bilinear (antialiased) resize of uint8 NCHW images to ``size`` x ``size``."""
    if images.shape[-2:] == (size, size):
        return images
    out = []
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out) if out else images.new_zeros((0, images.shape[1], size, size))


# -- embedded default ----------------------------------------------------------------
def _load_digits(cfg: DataConfig):
    """scikit-learn's bundled 1,797 real 8x8 handwritten digits (no download)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    n_test = resolve_count(cfg.test_size, len(labels), "data.test_size")
    kept, held = stratified_holdout(labels.numpy(), n_test, 12345)  # fixed test split
    classes = [str(i) for i in range(10)]
    if cfg.image_size is None:
        images = resize_uint8(images, 16)
    return images[kept], labels[kept], images[held], labels[held], classes


# -- torchvision CIFAR ---------------------------------------------------------------
_CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def _cifar_missing_message(cfg: DataConfig) -> str:
    folder = Path(cfg.root) / _CIFAR_FOLDERS[cfg.source]
    return (
        f"{cfg.source} was not found at {str(folder)!r}. Either set data.download: true (needs network "
        f"access; torchvision downloads it into {cfg.root!r}), or place the extracted 'python version' "
        f"archive there (the folder {_CIFAR_FOLDERS[cfg.source]!r} under data.root), or use "
        "data.source: image_folder with a train/<class>/*, test/<class>/* tree."
    )


def _load_cifar(cfg: DataConfig):
    from torchvision import datasets

    cls = datasets.CIFAR10 if cfg.source == "cifar10" else datasets.CIFAR100
    try:
        train = cls(cfg.root, train=True, download=cfg.download)
        test = cls(cfg.root, train=False, download=cfg.download)
    except RuntimeError as err:
        raise DataError(_cifar_missing_message(cfg) + f" (torchvision: {err})") from err
    except OSError as err:  # URLError and socket errors when offline
        raise DataError(
            f"downloading {cfg.source} into {cfg.root!r} failed ({err}); without network access, "
            + _cifar_missing_message(cfg)
        ) from err

    def tensors(ds):
        x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        y = torch.as_tensor(np.asarray(ds.targets, dtype=np.int64))
        return x, y

    train_x, train_y = tensors(train)
    test_x, test_y = tensors(test)
    return train_x, train_y, test_x, test_y, list(train.classes)


# -- image folders -------------------------------------------------------------------
def list_class_tree(root: Path) -> dict[str, list[Path]]:
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    tree = {}
    for folder in classes:
        files = sorted(
            p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        )
        tree[folder.name] = files
    empty = [name for name, files in tree.items() if not files]
    if empty and len(empty) < len(tree):
        # dropping it would silently change the class count (and every label after it)
        raise DataError(
            f"image folder {str(root)!r}: class folder(s) {empty[:5]} hold no image (extensions "
            f"{list(IMAGE_EXTENSIONS)}); add images or remove the folder(s)"
        )
    return {name: files for name, files in tree.items() if files}


def _decode_all(paths: list[Path], size: int | None) -> torch.Tensor:
    from PIL import Image

    def one(path: Path) -> torch.Tensor:
        try:
            with Image.open(path) as handle:
                array = np.asarray(handle.convert("RGB"), dtype=np.uint8)
        except Exception as err:
            raise DataError(f"cannot decode image {str(path)!r}: {err}") from err
        img = torch.from_numpy(array.copy()).permute(2, 0, 1)
        if size is not None and tuple(img.shape[-2:]) != (size, size):
            img = resize_uint8(img.unsqueeze(0), size)[0]
        return img

    workers = min(16, (os.cpu_count() or 2) * 2)
    images = []
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            Progress(len(paths), f"decoding images ({workers} threads)", unit="img", log_every=10.0,
                     log_final=False) as progress:
        for image in pool.map(one, paths, chunksize=256):
            images.append(image)
            progress.advance()
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1:
        raise DataError(
            f"images have different sizes {sorted(shapes)[:4]}...; set data.image_size to resize them to one size"
        )
    return torch.stack(images) if images else torch.zeros((0, 3, size or 32, size or 32), dtype=torch.uint8)


def _tree_tensors(tree: dict[str, list[Path]], classes: list[str], size: int | None):
    paths, labels = [], []
    for index, name in enumerate(classes):
        paths.extend(tree[name])
        labels.extend([index] * len(tree[name]))
    return _decode_all(paths, size), torch.tensor(labels, dtype=torch.int64)


def _load_image_folder(cfg: DataConfig):
    root = Path(cfg.root)
    train_dir, test_dir = root / "train", root / "test"
    if train_dir.is_dir() and test_dir.is_dir():
        train_tree, test_tree = list_class_tree(train_dir), list_class_tree(test_dir)
        if not train_tree:
            raise DataError(f"image folder {str(train_dir)!r} has no images in class sub-folders")
        if not test_tree:
            raise DataError(f"image folder {str(test_dir)!r} has no images in class sub-folders")
        if sorted(train_tree) != sorted(test_tree):
            only_train = sorted(set(train_tree) - set(test_tree))
            only_test = sorted(set(test_tree) - set(train_tree))
            raise DataError(
                f"image folder {str(root)!r}: train and test class lists differ "
                f"(only in train: {only_train}, only in test: {only_test})"
            )
        classes = sorted(train_tree)
        check_classes(cfg, classes, {})  # before decoding any image
        logger.info("image folder %s: %d train and %d test images in %d classes, decoding%s", root,
                    sum(map(len, train_tree.values())), sum(map(len, test_tree.values())), len(classes),
                    f" and resizing to {cfg.image_size}x{cfg.image_size}" if cfg.image_size else "")
        train_x, train_y = _tree_tensors(train_tree, classes, cfg.image_size)
        test_x, test_y = _tree_tensors(test_tree, classes, cfg.image_size)
        return train_x, train_y, test_x, test_y, classes
    if train_dir.is_dir() != test_dir.is_dir():
        present = "train" if train_dir.is_dir() else "test"
        raise DataError(f"image folder {str(root)!r} has a {present}/ folder but not its counterpart")
    tree = list_class_tree(root)
    if not tree:
        raise DataError(
            f"image folder {str(root)!r} has no images; expected train/<class>/* and test/<class>/* "
            f"or <class>/* files with extensions {list(IMAGE_EXTENSIONS)}"
        )
    classes = sorted(tree)
    check_classes(cfg, classes, {})  # before decoding any image
    logger.info("image folder %s: %d images in %d classes, decoding", root, sum(map(len, tree.values())), len(classes))
    images, labels = _tree_tensors(tree, classes, cfg.image_size)
    n_test = resolve_count(cfg.test_size, len(labels), "data.test_size")
    kept, held = stratified_holdout(labels.numpy(), n_test, stream_seed(cfg.seed, "data.test_split"))
    kept_t, held_t = torch.from_numpy(kept), torch.from_numpy(held)
    return images[kept_t], labels[kept_t], images[held_t], labels[held_t], classes
