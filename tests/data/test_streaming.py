"""Image folders streamed from disk with the ImageNet transforms (evaluation on large data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wpnas.config import from_dict
from wpnas.data.streaming import IMAGENET_MEAN, StreamedFolder, StreamedFolderConfig
from wpnas.errors import ConfigError, DataError


def write_folder(root, classes=("cat", "dog", "fox"), per_class=4, splits=("train", "val"), size=(30, 40)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in splits:
        for index, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                # class-coloured images: a network can tell the classes apart
                pixels = np.full((*size, 3), 40 + 80 * index, dtype=np.uint8)
                pixels = np.clip(pixels + rng.integers(0, 30, pixels.shape), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.jpg")
    return root


def config(root, **overrides):
    return from_dict(StreamedFolderConfig, {"root": str(root), "image_size": 16, "resize": 20, "workers": 0,
                                            **overrides})


def test_batches_have_the_imagenet_layout(tmp_path):
    folder = StreamedFolder(config(write_folder(tmp_path)))
    assert folder.classes == ["cat", "dog", "fox"] and folder.num_classes == 3
    assert folder.input_shape == (3, 16, 16) and folder.size("train") == 12 and folder.size("valid") == 0
    train = folder.batches("train", "cpu", 5, train=True, seed=3)
    assert len(train) == 2  # 12 images, ragged batch dropped
    x, y = next(iter(train))
    assert x.shape == (5, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    test = folder.batches("test", "cpu", 5, train=False)
    batches = list(test)
    assert [b[0].shape[0] for b in batches] == [5, 5, 2]
    # the test transform is deterministic: the same pixels twice; normalised with ImageNet's statistics
    again = list(folder.batches("test", "cpu", 5, train=False))
    assert torch.equal(batches[0][0], again[0][0])
    assert batches[0][0][:, 0].mean().item() == pytest.approx(((40 + 14) / 255 - IMAGENET_MEAN[0]) / 0.229, abs=0.3)


def test_same_seed_same_batches(tmp_path):
    folder = StreamedFolder(config(write_folder(tmp_path)))

    def first(seed):
        torch.manual_seed(0)  # in-process decoding draws the random crops from the global generator
        return next(iter(folder.batches("train", "cpu", 4, train=True, seed=seed)))

    a, b, c = first(1), first(1), first(2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1]) or not torch.equal(a[0], c[0])


def test_bad_folders_fail_clearly(tmp_path):
    with pytest.raises(ConfigError, match="resize: 8 must be >= image_size"):
        config(tmp_path, resize=8)
    with pytest.raises(DataError, match="is not a folder"):
        StreamedFolder(config(tmp_path / "missing"))
    write_folder(tmp_path / "a", splits=("train",))
    write_folder(tmp_path / "a", classes=("cat", "dog", "owl"), splits=("val",))
    with pytest.raises(DataError, match=r"class lists differ \(only in train: \['fox'\], only in test: \['owl'\]\)"):
        StreamedFolder(config(tmp_path / "a"))
    (tmp_path / "b" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "b" / "val").mkdir(parents=True)
    with pytest.raises(DataError, match="has no images in class sub-folders"):
        StreamedFolder(config(tmp_path / "b"))
