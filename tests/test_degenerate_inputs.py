"""Degenerate inputs are errors or warnings, and every configuration message names its full key."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from wpnas.config import from_dict
from wpnas.data.sources import DataConfig, build_image_splits
from wpnas.errors import ConfigError, DataError
from wpnas.io.pairs import check_pairs, read_pairs


def _image_tree(root, layout, per_class=4):
    from PIL import Image

    rng = np.random.default_rng(0)
    counts = layout if isinstance(layout, dict) else dict.fromkeys(layout, per_class)
    for folder, count in counts.items():
        (root / folder).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / folder / f"{i}.png")


@pytest.mark.parametrize("layout", [["cats"], ["train/cats", "test/cats"]])
def test_one_class_image_folder_is_an_error_naming_source_and_class(tmp_path, layout):
    _image_tree(tmp_path, layout)
    with pytest.raises(DataError, match=r"'image_folder' at .* has only one class, 'cats'"):
        build_image_splits(DataConfig(source="image_folder", root=str(tmp_path), valid_size=1))


def test_an_empty_class_folder_is_an_error_naming_it(tmp_path):
    _image_tree(tmp_path, {"train/a": 6, "train/b": 6, "test/a": 3, "test/b": 3})
    (tmp_path / "train" / "c").mkdir()  # used to be dropped silently: two classes instead of three
    (tmp_path / "test" / "c").mkdir()
    with pytest.raises(DataError, match=r"class folder\(s\) \['c'\] hold no image"):
        build_image_splits(DataConfig(source="image_folder", root=str(tmp_path), valid_size=2))


def test_split_with_a_single_class_is_an_error(tmp_path):
    # 'b' has one training image: the stratified 2-image valid split gets two of 'a'.
    _image_tree(tmp_path, {"train/a": 20, "train/b": 1, "test/a": 3, "test/b": 3})
    with pytest.raises(DataError, match=r"'image_folder' at .*: the valid split holds a single class, 'a' \(2 images\)"):
        build_image_splits(DataConfig(source="image_folder", root=str(tmp_path), valid_size=2))


@pytest.mark.parametrize("value", [1.5, 0, 0.0, -1, 2.25])
def test_split_size_neither_fraction_nor_whole_count_is_refused(value):
    # 1.5 used to be truncated to a one-image valid split, and the search ran and exited 0
    with pytest.raises(ConfigError, match=rf"data.valid_size: {value!r} is neither a fraction in \(0, 1\) nor a "
                                          "whole count"):
        DataConfig(valid_size=value)
    with pytest.raises(ConfigError, match=rf"data.test_size: {value!r} is neither"):
        DataConfig(test_size=value)


@pytest.mark.parametrize("valid_size", [1, 0.001])
def test_a_valid_split_of_fewer_than_two_images_is_refused_naming_the_key(valid_size):
    with pytest.raises(DataError, match=rf"data.valid_size = {valid_size!r} leaves the valid split of data.source "
                                        r"'digits' [01] image\(s\); every split needs at least 2 images"):
        build_image_splits(DataConfig(image_size=8, train_limit=300, valid_size=valid_size))


def test_a_train_limit_that_leaves_classes_untrained_is_refused_naming_the_key():
    # train_limit=5 used to fail after WarmUp and ground truth with "looks like fractions"
    with pytest.raises(DataError, match=r"data.train_limit = 5 leaves \d+ of the 10 classes of data.source 'digits' "
                                        r"without a training image .*at least 1 image in the train split"):
        build_image_splits(DataConfig(image_size=8, train_limit=5))
    build_image_splits(DataConfig(image_size=8, train_limit=40, valid_size=0.25))  # 3 a class: fine


def _tss_pairs(tss, acc):
    archs = tss.sample_unique(np.random.default_rng(0), len(acc))
    return pd.DataFrame({"arch": [tss.to_string(a) for a in archs], "accuracy": acc})


def test_fraction_accuracies_are_refused_unless_declared(tss):
    pairs = _tss_pairs(tss, [0.91, 0.88, 0.93, 0.85])
    with pytest.raises(DataError, match=r"landmarks: every accuracy is <= 1.0 \(largest 0.93\).*fractions"):
        read_pairs(tss, pairs, what="landmarks")
    _, acc = read_pairs(tss, pairs, accuracy_scale="fraction")
    assert acc == pytest.approx([91.0, 88.0, 93.0, 85.0])
    _, acc = read_pairs(tss, pairs, accuracy_scale="percent")  # declared: taken as they are
    assert acc == pytest.approx([0.91, 0.88, 0.93, 0.85])
    with pytest.raises(DataError, match=r"accuracy 91 of row 0 is impossible: accuracy_scale is 'fraction', so every accuracy must lie in \[0, 1\]"):
        check_pairs(tss, list(pairs["arch"]), [91.0, 88.0, 93.0, 85.0], accuracy_scale="fraction")
    _, acc = check_pairs(tss, list(pairs["arch"]), [91.0, 0.5, 93.0, 85.0])  # percent: untouched
    assert acc[1] == 0.5


@pytest.mark.parametrize("bad, row", [(250.0, 1), (-5.0, 2)])
def test_impossible_accuracies_are_refused_naming_the_row(tss, bad, row):
    acc = [91.0, 88.0, 93.0, 85.0]
    acc[row] = bad
    pairs = _tss_pairs(tss, acc)
    for scale in (None, "percent"):
        with pytest.raises(DataError, match=rf"arch_accuracy_pairs: accuracy {bad:g} of row {row} is impossible: "
                                            r"accuracies are percent and must lie in \[0, 100\]"):
            read_pairs(tss, pairs, what="arch_accuracy_pairs", accuracy_scale=scale)
    with pytest.raises(DataError, match=rf"accuracy -0.05 of row {row} is impossible"):
        check_pairs(tss, list(pairs["arch"]), [0.9, 0.8, 0.7, 0.6][:row] + [-0.05] + [0.5] * (3 - row),
                    accuracy_scale="fraction")


def test_predictor_stage_names_its_scale_setting(tss, monkeypatch):
    from wpnas.predictors import stage
    from wpnas.predictors.stage import PredictorStageConfig, fit_predictor

    pairs = _tss_pairs(tss, list(np.random.default_rng(1).uniform(0.5, 0.95, 10)))
    model = {"support_size": 2}
    cfg = from_dict(PredictorStageConfig, {"valid_size": 3, "model": model}, where="predictor")
    with pytest.raises(DataError, match="predictor.accuracy_scale = 'fraction'"):
        fit_predictor(tss, pairs, cfg)
    seen = []

    def capture(space, archs, acc, model_cfg):
        seen.append(np.asarray(acc))
        raise RuntimeError("stop after capturing the training accuracies")

    monkeypatch.setattr(stage, "train_predictor", capture)
    cfg = from_dict(PredictorStageConfig, {"valid_size": 3, "model": model, "accuracy_scale": "fraction"},
                    where="predictor")
    with pytest.raises(RuntimeError, match="stop after"):
        fit_predictor(tss, pairs, cfg)
    assert len(seen[0]) == 7 and ((seen[0] >= 50) & (seen[0] <= 95)).all()  # trained in percent
    with pytest.raises(ConfigError, match="predictor.accuracy_scale"):
        from_dict(PredictorStageConfig, {"accuracy_scale": "percentage"}, where="predictor")


def test_batch_larger_than_the_split_warns_with_key_and_sizes(caplog):
    from wpnas.data.batching import warn_oversize_batch

    with caplog.at_level(logging.WARNING, logger="wpnas.data.batching"):
        assert warn_oversize_batch("warmup.batch_size", 512, 300, "train")
        assert not warn_oversize_batch("warmup.batch_size", 64, 300, "train")
    (record,) = caplog.records
    assert "warmup.batch_size" in record.getMessage() and "512" in record.getMessage()
    assert "300 images" in record.getMessage()


@pytest.mark.slow
def test_warmup_warns_about_an_oversize_batch(caplog):
    from wpnas.spaces import get_space
    from wpnas.train.warmup import WarmupConfig, warmup_supernet

    splits = build_image_splits(DataConfig(train_limit=60, valid_size=0.5))
    cfg = from_dict(WarmupConfig, {"epochs": 1, "batch_size": 1000, "probe_archs": 1, "calib_batches": 1,
                                   "probe_valid_limit": 16}, where="warmup")
    with caplog.at_level(logging.WARNING, logger="wpnas.data.batching"):
        warmup_supernet(get_space("nats_sss", channels=[8, 16]), splits, cfg, torch.device("cpu"), seed=0)
    assert any("warmup.batch_size: batch size 1000 is larger than the train split (30 images)" in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize(
    ("parse", "section", "key"),
    [
        ("search_config", {"wpnas": {"reward": {"b2": -1}}}, "search.wpnas.reward.b2"),
        ("search_config", {"wpnas": {"optim": {"momentum": 2}}}, "search.wpnas.optim.momentum"),
        ("search_config", {"wpnas": {"landmark": {"weight": -1}}}, "search.wpnas.landmark.weight"),
        ("search_config", {"wpnas": {"hypernet": {"fixed_scale": 0}}}, "search.wpnas.hypernet"),
        ("search_config", {"evolution": {"mutation_prob": 2}}, "search.evolution.mutation_prob"),
        ("warmup_config", {"optim": {"weight_decay": -1}}, "warmup.optim.weight_decay"),
        ("ground_truth_config", {"optim": {"grad_clip": -1}}, "ground_truth.optim.grad_clip"),
        ("predictor_config", {"model": {"dropout": 2}}, "predictor.model.dropout"),
        ("predictor_config", {"model": {"device": "gpu"}}, "predictor.model.device"),
    ],
)
def test_nested_config_errors_name_the_full_key(parse, section, key):
    from wpnas.pipelines import params

    with pytest.raises(ConfigError) as err:
        getattr(params, parse)(section)
    assert str(err.value).startswith(key + ":") or str(err.value).startswith(key + " "), str(err.value)


def test_ground_truth_from_a_fraction_table_needs_the_declared_scale(shared_data, tmp_path):
    from wpnas.spaces import get_space
    from wpnas.train.ground_truth import GroundTruthConfig, acquire_ground_truth

    table = pd.read_csv(shared_data / "nb201" / "nb201_cifar10.csv")
    table["cifar10_valid_200ep"] = table["cifar10_valid_200ep"] / 100.0
    path = tmp_path / "fractions.csv"
    table.to_csv(path, index=False)
    section = {"source": "benchmark", "num_archs": 5,
               "benchmark": {"kind": "csv", "path": str(path), "metric": "cifar10_valid_200ep"}}
    space = get_space("nats_tss")
    with pytest.raises(DataError, match=r"fractions.csv.*ground_truth.accuracy_scale = 'fraction'"):
        acquire_ground_truth(space, from_dict(GroundTruthConfig, section, where="ground_truth"), seed=1)
    cfg = from_dict(GroundTruthConfig, dict(section, accuracy_scale="fraction"), where="ground_truth")
    pairs = acquire_ground_truth(space, cfg, seed=1)
    assert pairs["accuracy"].between(1.0, 100.0).all()


def test_data_parameters_that_disagree_with_the_stored_splits_are_refused_or_recorded(caplog):
    # Before: `kedro run --pipelines=warmup --params data.image_size=12` trained on the stored 8x8
    # splits while MLflow's params and run name said 12.
    from wpnas.pipelines.hooks import check_stored_splits

    stored = build_image_splits(DataConfig(image_size=8, train_limit=60, valid_size=0.5)).to_checkpoint()
    with pytest.raises(DataError, match=r"image_splits: the stored splits disagree with this run's parameters "
                                        r"\(data.image_size = 12, the stored splits hold 8x8 images\)"):
        check_stored_splits({"image_size": 12, "train_limit": 60}, stored)
    with pytest.raises(DataError, match=r"data.source = 'cifar10', the stored splits hold 'digits' images"):
        check_stored_splits({"source": "cifar10", "root": "/nowhere", "download": True}, stored)
    with caplog.at_level(logging.WARNING, logger="wpnas.pipelines.hooks"):
        check_stored_splits({"image_size": 8, "valid_size": 0.25}, stored)  # recorded as what was used
    assert any("made with data.valid_size = 0.5" in r.getMessage() for r in caplog.records)
    check_stored_splits({"image_size": 8, "valid_size": 0.5}, stored)  # agrees
    check_stored_splits({"valid_size": 0.5}, stored)  # no size given: the stored one is used, nothing to refuse
