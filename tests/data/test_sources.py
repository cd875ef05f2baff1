import tarfile

import numpy as np
import pickle
import pytest
import torch

from tests.conftest import write_image_tree
from wpnas.config import from_dict
from wpnas.data.sources import DataConfig, build_image_splits
from wpnas.data.splits import ImageSplits, stratified_holdout
from wpnas.errors import ConfigError, DataError


def test_digits_default_split_sizes_and_stats():
    splits = build_image_splits(DataConfig())
    assert splits.source == "digits"
    assert splits.input_shape == (1, 16, 16)
    assert splits.num_classes == 10
    total = splits.train_x.shape[0] + splits.valid_x.shape[0] + splits.test_x.shape[0]
    assert total == 1797
    assert splits.valid_x.shape[0] == round(0.5 * (1797 - 359))
    assert 0.0 < splits.mean[0] < 1.0 and 0.0 < splits.std[0] < 1.0
    # every class is present in every split
    for name in ("train", "valid", "test"):
        assert set(splits.split(name)[1].tolist()) == set(range(10))


def test_split_is_reproducible_and_seed_dependent():
    a = build_image_splits(DataConfig(seed=3))
    b = build_image_splits(DataConfig(seed=3))
    c = build_image_splits(DataConfig(seed=4))
    assert torch.equal(a.valid_x, b.valid_x) and torch.equal(a.train_y, b.train_y)
    assert not torch.equal(a.valid_x, c.valid_x)
    # test split does not depend on the split seed
    assert torch.equal(a.test_x, c.test_x)


def test_holdout_disjoint_and_covering():
    labels = np.repeat(np.arange(7), [10, 11, 12, 13, 5, 6, 40])
    kept, held = stratified_holdout(labels, 30, seed=0)
    assert len(held) == 30
    assert set(kept).isdisjoint(held)
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(len(labels)))
    # proportions preserved within one image per class
    for c in range(7):
        share = (labels[held] == c).sum()
        assert abs(share - (labels == c).sum() * 30 / len(labels)) < 1.0 + 1e-9


def test_valid_size_as_count_and_train_limit():
    splits = build_image_splits(DataConfig(valid_size=100, train_limit=600))
    assert splits.valid_x.shape[0] == 100 and splits.train_x.shape[0] == 500


def _write_fake_cifar10(root, n_train=50, n_test=20):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    per_batch = n_train // 5
    for i in range(1, 6):
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        with open(folder / f"data_batch_{i}", "wb") as fh:
            pickle.dump({"data": data, "labels": [int(x) for x in rng.integers(0, 10, per_batch)]}, fh)
    data = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"data": data, "labels": [int(x) for x in rng.integers(0, 10, n_test)]}, fh)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": names}, fh)


def test_torchvision_cifar10_format(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as cifar

    _write_fake_cifar10(tmp_path)
    # The fake files have other checksums than the real archive; the format is what is tested.
    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)
    splits = build_image_splits(DataConfig(source="cifar10", root=str(tmp_path), valid_size=0.2))
    assert splits.input_shape == (3, 32, 32)
    assert splits.train_x.shape[0] == 40 and splits.valid_x.shape[0] == 10 and splits.test_x.shape[0] == 20
    assert splits.classes[0] == "airplane"


def test_cifar_missing_offline_names_what_to_place(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        build_image_splits(DataConfig(source="cifar10", root=str(tmp_path)))


def test_image_folder_train_test_tree(tmp_path):
    write_image_tree(tmp_path, {"train": ["a", "b", "c"], "test": ["a", "b", "c"]})
    splits = build_image_splits(DataConfig(source="image_folder", root=str(tmp_path), image_size=8, valid_size=3))
    assert splits.classes == ["a", "b", "c"]
    assert splits.input_shape == (3, 8, 8)
    assert splits.train_x.shape[0] == 15 and splits.valid_x.shape[0] == 3 and splits.test_x.shape[0] == 18


def test_image_folder_single_tree_with_test_ratio(tmp_path):
    from PIL import Image

    for name in ("x", "y"):
        (tmp_path / name).mkdir()
        for i in range(10):
            Image.fromarray(np.full((8, 8, 3), i * 20, dtype=np.uint8)).save(tmp_path / name / f"{i}.jpg")
    splits = build_image_splits(DataConfig(source="image_folder", root=str(tmp_path), test_size=0.2, valid_size=0.25))
    assert splits.test_x.shape[0] == 4 and splits.valid_x.shape[0] == 4 and splits.train_x.shape[0] == 12


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_image_splits(DataConfig(source="image_folder", root=str(tmp_path / "nope")))
    (tmp_path / "empty" / "train" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "test" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        build_image_splits(DataConfig(source="image_folder", root=str(tmp_path / "empty")))
    write_image_tree(tmp_path / "mismatch", {"train": ["a", "b"], "test": ["a", "c"]}, per_class=2)
    with pytest.raises(DataError, match=r"only in train: \['b'\].*only in test: \['c'\]"):
        build_image_splits(DataConfig(source="image_folder", root=str(tmp_path / "mismatch")))


def test_unknown_source_and_bad_settings():
    with pytest.raises(ConfigError, match="'mnist'"):
        from_dict(DataConfig, {"source": "mnist"})
    with pytest.raises(ConfigError, match="unknown setting"):
        from_dict(DataConfig, {"sorce": "digits"})
    with pytest.raises(DataError, match="valid_size"):
        build_image_splits(DataConfig(valid_size=5000))


def test_checkpoint_round_trip():
    splits = build_image_splits(DataConfig())
    again = ImageSplits.from_checkpoint(splits.to_checkpoint())
    assert torch.equal(again.valid_x, splits.valid_x) and again.classes == splits.classes


@pytest.mark.shared_data
@pytest.mark.slow
def test_shared_cifar10_jpeg_tree_loads_in_full(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar_jpeg")
    with tarfile.open(shared_data / "cifar10-jpeg" / "cifar10-jpeg.tar.gz") as tar:
        tar.extractall(root, filter="data")
    tree = root if (root / "train").is_dir() else next(p for p in root.iterdir() if (p / "train").is_dir())
    splits = build_image_splits(DataConfig(source="image_folder", root=str(tree)))
    assert splits.num_classes == 10
    assert splits.input_shape == (3, 32, 32)
    assert splits.train_x.shape[0] + splits.valid_x.shape[0] == 50_000
    assert splits.test_x.shape[0] == 10_000
    assert splits.valid_x.shape[0] == 25_000
