"""Landmark regularisation: the ranking loss, the regulariser, the Trainer hook and WarmUp."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml

from wpnas.config import from_dict, seed_everything
from wpnas.data.batching import DeviceBatches
from wpnas.data.sources import DataConfig, build_image_splits
from wpnas.errors import ArchitectureError, ConfigError, DataError
from wpnas.spaces import get_space
from wpnas.train.engine import Engine, Meter, Trainer
from wpnas.train.landmark import LandmarkConfig, LandmarkRegularizer, pairwise_ranking_loss
from wpnas.train.optim import OptimConfig
from wpnas.train.warmup import WarmupConfig, warmup_supernet

REPO = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits16():
    return build_image_splits(DataConfig(source="digits", image_size=16))


@pytest.fixture(scope="module")
def space():
    return get_space("nats_tss", C=8, N=1)


@pytest.fixture
def batch(digits16):
    x, y = next(iter(DeviceBatches.from_splits(digits16, "train", CPU, 64, train=False, shuffle=True, seed=0)))
    return x, y


def _supernet(space, splits, seed=0):
    torch.manual_seed(seed)
    net = space.build_supernet(splits.in_channels, splits.num_classes)
    net.train()
    return net


def _table(space, accuracies, seed=0):
    archs = space.sample_unique(np.random.default_rng(seed), len(accuracies))
    return pd.DataFrame({"arch": [space.to_string(a) for a in archs], "accuracy": accuracies})


def _ce(net, arch, x, y):
    return F.cross_entropy(net(x, arch).float(), y)


# -- the loss -------------------------------------------------------------------------


def test_hinge_is_zero_when_ordered_by_the_margin_and_positive_otherwise():
    better, worse = torch.tensor([1.0, 1.0, 1.0, 2.0]), torch.tensor([1.5, 1.7, 1.2, 1.0])
    hinge = pairwise_ranking_loss(better, worse, "hinge", margin=0.5)
    assert hinge[0].item() == 0.0 and hinge[1].item() == 0.0  # ordered by exactly / more than the margin
    assert hinge[2].item() == pytest.approx(0.3)  # ordered, but by less than the margin
    assert hinge[3].item() == pytest.approx(1.5)  # misordered
    assert pairwise_ranking_loss(torch.tensor(1.0), torch.tensor(1.0), "hinge", 0.0).item() == 0.0
    assert pairwise_ranking_loss(torch.tensor(1.1), torch.tensor(1.0), "hinge", 0.0).item() > 0.0
    ordered = pairwise_ranking_loss(torch.tensor(1.0), torch.tensor(2.0), "logistic")
    reversed_ = pairwise_ranking_loss(torch.tensor(2.0), torch.tensor(1.0), "logistic")
    assert 0.0 < ordered.item() < reversed_.item()
    with pytest.raises(ConfigError, match="landmark.loss"):
        pairwise_ranking_loss(torch.tensor(1.0), torch.tensor(2.0), "square")


@pytest.mark.parametrize("kind", ["hinge", "logistic"])
def test_gradient_pushes_the_better_loss_down_and_the_worse_loss_up(kind):
    better = torch.tensor(2.0, requires_grad=True)
    worse = torch.tensor(1.0, requires_grad=True)
    pairwise_ranking_loss(better, worse, kind, margin=0.1).backward()
    assert better.grad.item() > 0  # gradient descent lowers loss_better
    assert worse.grad.item() < 0  # ... and raises loss_worse


def test_one_sgd_step_on_the_landmark_loss_reduces_it(space, digits16, batch):
    x, y = batch
    net = _supernet(space, digits16)
    archs = space.sample_unique(np.random.default_rng(1), 6)
    with torch.no_grad():
        ce = {a: _ce(net, a, x, y).item() for a in archs}
    low, high = min(archs, key=ce.get), max(archs, key=ce.get)
    # the path the SuperNet currently finds worst is declared the better landmark: misordered
    table = pd.DataFrame({"arch": [space.to_string(high), space.to_string(low)], "accuracy": [90.0, 50.0]})
    reg = LandmarkRegularizer(space, table, LandmarkConfig(enabled=True, weight=1.0), seed=0)
    before = reg.loss(net, x, y)
    assert before.item() > 0
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    opt.zero_grad()
    before.backward()
    opt.step()
    after = reg.loss(net, x, y)
    assert after.item() < before.item()


# -- the regulariser ------------------------------------------------------------------


def test_pairs_are_ordered_uniform_over_usable_pairs_and_seeded(space):
    table = _table(space, [10.0, 20.0, 20.0, 40.0])
    acc = dict(zip(table["arch"], table["accuracy"]))
    reg = LandmarkRegularizer(space, table, LandmarkConfig(enabled=True, pairs_per_step=4000), seed=5)
    assert reg.num_pairs == 5  # the tie (20, 20) has no order
    drawn = [(space.to_string(b), space.to_string(w)) for b, w in reg.sample_pairs()]
    assert all(acc[b] > acc[w] for b, w in drawn)
    counts = pd.Series(drawn).value_counts()
    assert len(counts) == 5 and counts.min() > 650 and counts.max() < 950
    cfg = LandmarkConfig(enabled=True, pairs_per_step=20)
    first = [LandmarkRegularizer(space, table, cfg, seed=s).sample_pairs() for s in (7, 7, 8)]
    assert first[0] == first[1] != first[2]

    gapped = LandmarkRegularizer(space, table, LandmarkConfig(enabled=True, min_gap=15.0, pairs_per_step=50))
    assert gapped.num_pairs == 3  # only the pairs with 40: the 10-point gaps are not used
    assert {acc[space.to_string(b)] for b, _ in gapped.sample_pairs()} == {40.0}


def test_due_every_k_steps_and_never_when_disabled(space):
    table = _table(space, [10.0, 20.0])
    reg = LandmarkRegularizer(space, table, LandmarkConfig(enabled=True, every=3))
    assert [s for s in range(10) if reg.due(s)] == [0, 3, 6, 9]
    off = LandmarkRegularizer(space, table, LandmarkConfig(enabled=False))
    assert not any(off.due(s) for s in range(5))
    assert off.extra_loss(0, lambda x, a: x, torch.zeros(1), torch.zeros(1)) is None


def test_generator_state_round_trips_through_a_weights_only_checkpoint(space):
    table = _table(space, [float(a) for a in range(10, 60, 5)])
    reg = LandmarkRegularizer(space, table, LandmarkConfig(enabled=True, pairs_per_step=3), seed=1)
    reg.sample_pairs()
    buffer = io.BytesIO()
    torch.save(reg.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    expected = reg.sample_pairs()
    other = LandmarkRegularizer(space, table, LandmarkConfig(enabled=True, pairs_per_step=3), seed=99)
    other.load_state_dict(state)
    assert other.sample_pairs() == expected


# -- the Trainer hook -----------------------------------------------------------------


def test_trainer_step_adds_the_extra_loss_to_the_gradients_but_returns_the_ce(space, digits16, batch):
    x, y = batch
    optim = OptimConfig(lr=0.1, lr_min=0.1, momentum=0.0, nesterov=False, weight_decay=0.0, grad_clip=None)
    table = _table(space, [30.0, 50.0, 70.0, 90.0], seed=2)
    cfg = LandmarkConfig(enabled=True, weight=3.0, pairs_per_step=2, loss="logistic")
    arch = space.sample(np.random.default_rng(3))

    manual_net = _supernet(space, digits16)
    reg = LandmarkRegularizer(space, table, cfg, seed=0)
    state = reg.state_dict()
    ce = _ce(manual_net, arch, x, y)
    extra = reg.loss(manual_net, x, y)
    (ce + extra).backward()
    expected = {n: p.grad.clone() for n, p in manual_net.named_parameters() if p.grad is not None}

    net = _supernet(space, digits16)
    reg.load_state_dict(state)  # the same pairs as the manual computation
    trainer = Trainer(net.parameters(), optim, 10, Engine(CPU))
    meter = Meter(CPU)
    loss = trainer.step(lambda inp: net(inp, arch), x, y, meter, extra_loss=reg.extra_loss(0, net, x, y))
    assert loss.item() == pytest.approx(ce.item(), rel=1e-6)
    assert meter.result()["loss"] == pytest.approx(ce.item(), rel=1e-6)
    assert reg.pop_mean() == pytest.approx(extra.item(), rel=1e-6)
    got = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    assert got.keys() == expected.keys()
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, rtol=1e-5, atol=1e-6, msg=name)
    assert extra.item() > 0


# -- WarmUp ---------------------------------------------------------------------------


def _warm_cfg(landmark: dict | None = None) -> WarmupConfig:
    return from_dict(WarmupConfig, {"epochs": 2, "batch_size": 32, "probe_archs": 0, "calib_batches": 1,
                                    "landmark": landmark or {}})


def test_warmup_with_landmarks_records_them_and_trains_differently(space, tiny_splits, caplog):
    table = _table(space, [20.0, 35.0, 50.0, 65.0, 80.0], seed=4)
    seed_everything(0)
    plain = warmup_supernet(space, tiny_splits, _warm_cfg(), CPU, seed=0)
    seed_everything(0)
    with caplog.at_level(logging.INFO, logger="wpnas.train.warmup"):
        ignored = warmup_supernet(space, tiny_splits, _warm_cfg(), CPU, seed=0, landmarks=table)
    assert "ignored" in caplog.text
    seed_everything(0)
    lm_cfg = {"enabled": True, "weight": 1.0, "pairs_per_step": 2}
    ranked = warmup_supernet(space, tiny_splits, _warm_cfg(lm_cfg), CPU, seed=0, landmarks=table)

    assert plain["landmark"] == {"enabled": False, "pairs": 0} == ignored["landmark"]
    assert ranked["landmark"]["enabled"] is True and ranked["landmark"]["pairs"] == 5
    assert ranked["config"]["landmark"]["enabled"] is True
    assert all("landmark_loss" not in h for h in plain["history"])
    assert len(ranked["history"]) == 2
    assert all(np.isfinite(h["landmark_loss"]) and h["landmark_loss"] >= 0 for h in ranked["history"])
    for key, value in plain["state_dict"].items():  # landmarks given while disabled change nothing
        assert torch.equal(value, ignored["state_dict"][key]), key
    differs = [k for k, v in plain["state_dict"].items()
               if v.is_floating_point() and not torch.allclose(v, ranked["state_dict"][k])]
    assert differs


def test_warmup_with_landmarks_enabled_needs_pairs_before_building_anything(space):
    cfg = _warm_cfg({"enabled": True})
    with pytest.raises(ConfigError, match="warmup.landmark.enabled needs ground-truth pairs"):
        warmup_supernet(space, None, cfg, CPU)  # no splits: fails before touching data or the SuperNet
    sss = pd.DataFrame({"arch": ["8:16:24:32:64", "8:8:8:8:8"], "accuracy": [60.0, 50.0]})
    with pytest.raises(ArchitectureError, match="8:16:24:32:64"):
        warmup_supernet(space, None, cfg, CPU, landmarks=sss)


# -- bad input ------------------------------------------------------------------------


def test_bad_landmark_tables_are_rejected_with_the_reason(space):
    cfg = LandmarkConfig(enabled=True)
    with pytest.raises(DataError, match="need at least 2 landmarks, got 1"):
        LandmarkRegularizer(space, _table(space, [50.0]), cfg)
    with pytest.raises(ArchitectureError, match=r"'8:16:24:32:64', is not an architecture of space 'nats_tss'"):
        LandmarkRegularizer(space, pd.DataFrame({"arch": ["8:16:24:32:64"] * 2, "accuracy": [1.0, 2.0]}), cfg)
    with pytest.raises(DataError, match="no usable ordered pair"):
        LandmarkRegularizer(space, _table(space, [50.0, 50.0, 50.0]), cfg)
    with pytest.raises(DataError, match="no usable ordered pair"):
        LandmarkRegularizer(space, _table(space, [50.0, 52.0, 54.0]), LandmarkConfig(min_gap=5.0))
    with pytest.raises(DataError, match="nan"):
        LandmarkRegularizer(space, _table(space, [50.0, float("nan"), 54.0]), cfg)
    with pytest.raises(DataError, match="missing column"):
        LandmarkRegularizer(space, _table(space, [50.0, 60.0]).rename(columns={"accuracy": "acc"}), cfg)


@pytest.mark.parametrize(
    "name,value",
    [("weight", -1.0), ("weight", float("nan")), ("every", 0), ("pairs_per_step", 0), ("loss", "square"),
     ("margin", -0.1), ("min_gap", -1.0), ("min_gap", float("inf"))],
)
def test_invalid_config_values_name_the_setting(name, value):
    with pytest.raises(ConfigError, match=rf"landmark\.{name}"):
        LandmarkConfig(**{name: value})
    with pytest.raises(ConfigError, match=rf"landmark\.{name}"):
        from_dict(WarmupConfig, {"landmark": {name: value}})


def test_parameters_file_landmark_block_is_the_default_config():
    section = yaml.safe_load((REPO / "conf" / "base" / "parameters_warmup.yml").read_text())["warmup"]
    for key in ("resume_from", "checkpoint_every", "resume"):  # run settings, not WarmupConfig's
        section.pop(key, None)
    assert from_dict(WarmupConfig, section, where="warmup").landmark == LandmarkConfig()


def test_schedule_starts_late_and_ramps_on_a_cosine(space):
    reg = LandmarkRegularizer(space, _table(space, [50.0, 60.0, 70.0]), LandmarkConfig(enabled=True, weight=10.0))
    assert reg.weight_at(0) == 10.0  # no schedule: full weight at once
    reg.schedule(800)  # start 0.375 -> the term begins at step 300
    weights = [reg.weight_at(s) for s in range(800)]
    assert all(w == 0.0 for w in weights[:300]) and not reg.due(299) and reg.due(300)
    assert all(b > a for a, b in zip(weights[300:], weights[301:]))
    assert weights[300] < 0.01 and weights[-1] == pytest.approx(10.0)
    assert weights[300 + 250] == pytest.approx(5.0, abs=0.05)  # half way: half the weight
    flat = LandmarkRegularizer(space, _table(space, [50.0, 60.0]), LandmarkConfig(enabled=True, ramp="none", start=0.5))
    flat.schedule(10)
    assert [flat.weight_at(s) for s in (4, 5, 9)] == [0.0, 10.0, 10.0]


# -- the landmark phase (the search pipeline's SuperNet) ------------------------------


def test_landmark_phase_turns_the_supernet_ranking_towards_the_landmarks(space, tiny_splits):
    from wpnas.io.supernet_checkpoint import restore_supernet
    from wpnas.train.warmup import LandmarkPhaseConfig, landmark_phase

    seed_everything(0)
    warmed = warmup_supernet(space, tiny_splits, _warm_cfg(), CPU, seed=0)
    x, y = tiny_splits.train_x[:256].float(), tiny_splits.train_y[:256]

    def ce(checkpoint, arch):
        net = restore_supernet(checkpoint, CPU)
        net.train()
        with torch.no_grad():
            return float(_ce(net, arch, x, y))

    # the same continuation without the term ranks a few architectures; the landmarks say the opposite
    plain_cfg = from_dict(WarmupConfig, {**_warm_cfg().__dict__, "epochs": 2 + 3, "landmark": {}})
    seed_everything(0)
    plain = warmup_supernet(space, tiny_splits, plain_cfg, CPU, seed=0, resume=warmed)
    archs = space.sample_unique(np.random.default_rng(0), 8)
    order = sorted(archs, key=lambda a: ce(plain, a))
    good, bad = order[0], order[-1]
    assert ce(plain, good) < ce(plain, bad)
    inverted = pd.DataFrame({"arch": [space.to_string(good), space.to_string(bad)], "accuracy": [20.0, 80.0]})
    cfg = from_dict(LandmarkPhaseConfig, {"epochs": 3, "landmark": {"weight": 10.0, "ramp": "none", "start": 0.0}})
    seed_everything(0)
    phased = landmark_phase(space, tiny_splits, _warm_cfg(), cfg, warmed, inverted, CPU, seed=0)
    assert ce(phased, bad) < ce(phased, good)  # the landmark phase inverts it
    assert phased["epoch"] == 5 and phased["landmark"]["pairs"] == 2
    assert phased["landmark_phase"] == {"warmed_from": warmed["fingerprint"]["fingerprint"], "warmed_epochs": 2,
                                        "epochs": 3, "pairs": 2}
    assert all("landmark_loss" in h for h in phased["history"][2:])


def test_landmark_phase_term_starts_within_the_phase():
    from wpnas.train.warmup import LandmarkPhaseConfig

    settings = LandmarkPhaseConfig(epochs=10).warmup_settings(_warm_cfg(), warmed_epochs=30)
    assert settings.epochs == 40 and settings.landmark.enabled and settings.landmark.start == pytest.approx(0.75)
    later = from_dict(LandmarkPhaseConfig, {"epochs": 10, "landmark": {"start": 0.5}}).warmup_settings(_warm_cfg(), 30)
    assert later.landmark.start == pytest.approx(35 / 40)
    # a partial landmark section keeps the phase's own start (0: from the phase's first step)
    partial = from_dict(LandmarkPhaseConfig, {"epochs": 10, "landmark": {"weight": 5.0}})
    assert partial.landmark.start == 0.0 and partial.warmup_settings(_warm_cfg(), 30).landmark.start == pytest.approx(0.75)
    with pytest.raises(ConfigError, match="landmark_phase.epochs"):
        LandmarkPhaseConfig(epochs=0)


def test_landmark_phase_needs_two_pairs_that_differ_before_training(space, tiny_splits):
    from wpnas.train.warmup import LandmarkPhaseConfig, landmark_phase

    one = _table(space, [50.0])
    with pytest.raises(DataError, match="need at least 2 landmarks"):
        landmark_phase(space, tiny_splits, _warm_cfg(), LandmarkPhaseConfig(), {"epoch": 1}, one, CPU)
    tied = _table(space, [50.0, 50.0])
    with pytest.raises(DataError, match="no usable ordered pair"):
        landmark_phase(space, tiny_splits, _warm_cfg(), LandmarkPhaseConfig(), {"epoch": 1}, tied, CPU)
