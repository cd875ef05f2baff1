"""Bad input fails with a clear wpnas error, before any data reaches the device."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from wpnas.errors import CheckpointError, ConfigError, TrainingError
from wpnas.search import methods as methods_module
from wpnas.search import SearchRunner, restore_search, run_search

DEVICE = torch.device("cpu")


@pytest.fixture()
def no_data(monkeypatch):
    """Fail loudly if the search gets as far as batching data."""

    class Untouchable:
        def __init__(self, *args, **kwargs):
            raise AssertionError("data was batched before the bad input was rejected")

        from_splits = classmethod(lambda cls, *a, **k: cls())

    monkeypatch.setattr(methods_module, "DeviceBatches", Untouchable)


def test_checkpoint_of_another_space(kit, no_data):
    _, tss_checkpoint = kit.warmed("nats_tss")
    sss_space, _ = kit.warmed("nats_sss")
    with pytest.raises(CheckpointError, match="another space or configuration.*nats_tss"):
        run_search(sss_space, kit.digits, tss_checkpoint, kit.cfg(), DEVICE)


def test_checkpoint_of_other_options(kit, no_data):
    from wpnas.spaces import get_space

    _, tss_checkpoint = kit.warmed("nats_tss")
    with pytest.raises(CheckpointError, match="options"):
        run_search(get_space("nats_tss", C=8, N=1), kit.digits, tss_checkpoint, kit.cfg(), DEVICE)


def test_not_a_checkpoint(kit, no_data):
    space, _ = kit.warmed("nats_tss")
    with pytest.raises(CheckpointError, match="not a wpnas SuperNet checkpoint"):
        run_search(space, kit.digits, {"state_dict": {}}, kit.cfg(), DEVICE)


def test_b1_without_predictor(kit, no_data):
    space, warmed = kit.warmed("nats_tss")
    with pytest.raises(ConfigError, match="b1 = 0.5.*no predictor"):
        run_search(space, kit.digits, warmed, kit.cfg(reward={"b1": 0.5}), DEVICE)


@pytest.mark.parametrize("predictor, message", [
    (lambda archs: np.full(len(archs), np.nan), "non-finite"),
    (lambda archs: np.zeros((len(archs), 3)), "values for"),
    ("not a predictor", "expected a Predictor"),
])
def test_broken_predictor(kit, no_data, predictor, message):
    space, warmed = kit.warmed("nats_tss")
    with pytest.raises(ConfigError, match=message):
        run_search(space, kit.digits, warmed, kit.cfg(reward={"b1": 0.5}), DEVICE, predictor=predictor)


@pytest.mark.parametrize("override, message", [
    ({"epochs": 0}, "epochs"),
    ({"steps_per_epoch": 0}, "steps_per_epoch"),
    ({"samples_per_step": 0}, "samples_per_step"),
    ({"valid_batch_size": 0}, "valid_batch_size"),
    ({"alpha_lr": 0.0}, "alpha_lr"),
    ({"alpha_lr": -1e-3}, "alpha_lr"),
    ({"alpha_betas": [0.9]}, "alpha_betas"),
    ({"entropy_weight": -0.1}, "entropy_weight"),
    ({"sampling": "greedy"}, "sampling"),
    ({"eval_every": -1}, "eval_every"),
    ({"reward": {"b2": -1e-3}}, "b2"),
    ({"reward": {"b3": 1.0}}, "b3"),
    ({"hypernet": {"mode": "on"}}, "mode"),
    ({"optim": {"lr": 0.01, "lr_min": 0.1}}, "lr_min"),
    ({"epoch": 3}, "unknown setting"),
    ({"hypernet": {"mode": "trained"}, "update_weights": False}, "nothing would train"),
])
def test_invalid_config_values(kit, no_data, override, message):
    space, warmed = kit.warmed("nats_tss")
    with pytest.raises(ConfigError, match=message):
        kit.cfg(**override)  # parsed once into SearchConfig, before anything runs


def test_nan_weights_stop_the_search(kit):
    space, warmed = kit.warmed("nats_sss")
    broken = copy.deepcopy(warmed)
    key = next(k for k, v in broken["state_dict"].items() if v.is_floating_point() and k.endswith("weight"))
    broken["state_dict"][key].fill_(float("nan"))
    with pytest.raises(TrainingError, match="diverged"):
        run_search(space, kit.digits, broken, kit.cfg(update_weights=False), DEVICE)


def test_resume_from_a_warmup_checkpoint(kit):
    space, warmed = kit.warmed("nats_tss")
    with pytest.raises(CheckpointError, match="'warmup' checkpoint"):
        run_search(space, kit.digits, warmed, kit.cfg(), DEVICE, resume=warmed)


def test_resume_with_another_hypernet(kit):
    space, warmed = kit.warmed("nats_tss")
    done = SearchRunner(space, kit.digits, warmed, kit.cfg(epochs=2), DEVICE).run(stop_epoch=1)
    cfg = kit.cfg(epochs=2, hypernet={"mode": "fixed", "embed_dim": 8, "hidden": 8})
    with pytest.raises(CheckpointError, match="HyperNet"):
        run_search(space, kit.digits, warmed, cfg, DEVICE, resume=done.checkpoint)


def test_restore_search_needs_a_search_checkpoint(kit):
    _, warmed = kit.warmed("nats_tss")
    with pytest.raises(CheckpointError, match="not a WPNAS search checkpoint"):
        restore_search(warmed)


def test_supernet_warmed_on_other_splits_is_refused_with_both_fingerprints(kit, no_data, caplog):
    """data_processing re-run with another image size after the warm-up: the search must not go on."""
    import logging

    from wpnas.data.sources import DataConfig, build_image_splits
    from wpnas.errors import DataError

    space, warmed = kit.warmed("nats_tss")
    smaller = build_image_splits(DataConfig(source="digits", image_size=6))
    with pytest.raises(DataError) as err:
        run_search(space, smaller, warmed, kit.cfg(), DEVICE)
    message = str(err.value)
    recorded, current = warmed["inputs"]["image_splits"]["fingerprint"], smaller.fingerprint()["fingerprint"]
    assert recorded != current and recorded in message and current in message
    assert "warmed_supernet" in message and "input_shape: [1,6,6] != [1,8,8]" in message
    # a checkpoint from before fingerprints: accepted, with a warning
    old = {k: v for k, v in warmed.items() if k not in ("inputs", "fingerprint")}
    with caplog.at_level(logging.WARNING), pytest.raises(AssertionError, match="data was batched"):
        run_search(space, kit.digits, old, kit.cfg(), DEVICE)
    assert "carries no fingerprint" in caplog.text
