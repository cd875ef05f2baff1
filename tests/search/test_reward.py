"""The reward r = -CE + b1 * FSP - b2 * FLOPs, the predictor cache and BN in the reward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from wpnas.errors import ConfigError, TrainingError
from wpnas.search.reward import PredictionCache, Reward, RewardConfig, batch_statistics
from wpnas.spaces import get_space

from .conftest import ToySpace


class CountingPredictor:
    """Synthetic predictor: accuracy (%) = 90 - 2 * sum(choices); counts the archs it is asked about."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, ...]] = []

    def __call__(self, archs):
        self.asked.extend(tuple(a) for a in archs)
        return np.array([90.0 - 2.0 * sum(a) for a in archs])


def test_reward_combines_terms_in_documented_units():
    space = ToySpace()  # FLOPs (M) = sum of choice indices
    reward = Reward(space, RewardConfig(b1=0.5, b2=0.25), (1, 8, 8), 10, predictor=CountingPredictor())
    archs = [(0, 0, 0, 0, 0), (1, 4, 2, 0, 3)]
    parts = reward([2.0, 1.5], archs)
    np.testing.assert_allclose(parts.ce, [2.0, 1.5])
    np.testing.assert_allclose(parts.fsp, [90.0, 70.0])
    np.testing.assert_allclose(parts.flops_m, [0.0, 10.0])
    np.testing.assert_allclose(parts.total, [-2.0 + 45.0 - 0.0, -1.5 + 35.0 - 2.5])
    np.testing.assert_allclose(reward.static(archs), [45.0, 32.5])


def test_accuracy_measure_replaces_minus_ce_and_still_checks_divergence():
    space = ToySpace()
    archs = [(0, 0, 0, 0, 0), (1, 4, 2, 0, 3)]
    reward = Reward(space, RewardConfig(b1=0.5, b2=0.25, measure="accuracy"), (1, 8, 8), 10,
                    predictor=CountingPredictor())
    parts = reward([2.0, 1.5], archs, accuracy=[0.25, 0.75])
    np.testing.assert_allclose(parts.total, [0.25 + 45.0 - 0.0, 0.75 + 35.0 - 2.5])
    np.testing.assert_allclose(parts.accuracy, [0.25, 0.75])
    np.testing.assert_allclose(parts.ce, [2.0, 1.5])
    with pytest.raises(ValueError, match="accuracy"):
        reward([2.0, 1.5], archs)
    with pytest.raises(TrainingError, match="diverged"):  # a NaN CE fails even when accuracy is the measure
        reward([float("nan"), 1.5], archs, accuracy=[0.1, 0.1])
    with pytest.raises(ConfigError, match=r"reward\.measure: 'acc' is not one of \['ce', 'accuracy'\]"):
        RewardConfig(measure="acc")
    ce_reward = Reward(space, RewardConfig(b2=0.25), (1, 8, 8), 10)  # 'ce' ignores a given accuracy
    np.testing.assert_allclose(ce_reward([2.0, 1.5], archs, accuracy=[0.25, 0.75]).total, [-2.0, -1.5 - 2.5])


def test_flops_term_uses_the_dataset_shape():
    space = get_space("nats_tss", C=4, N=1)
    arch = (3, 3, 3, 3, 3, 3)
    small = Reward(space, RewardConfig(b2=1.0), (1, 8, 8), 10).flops_m([arch])[0]
    large = Reward(space, RewardConfig(b2=1.0), (3, 32, 32), 100).flops_m([arch])[0]
    assert small == pytest.approx(space.cost(arch, (1, 8, 8), 10).flops_m)
    assert large == pytest.approx(space.cost(arch, (3, 32, 32), 100).flops_m)
    assert large > small


def test_b1_zero_needs_and_calls_no_predictor():
    space = ToySpace()
    predictor = CountingPredictor()
    reward = Reward(space, RewardConfig(b1=0.0, b2=1.0), (1, 8, 8), 10, predictor=predictor)
    parts = reward([1.0], [(1, 1, 1, 0, 1)])
    assert parts.total[0] == pytest.approx(-1.0 - 4.0)
    assert predictor.asked == []
    Reward(space, RewardConfig(b1=0.0), (1, 8, 8), 10)  # no predictor needed
    with pytest.raises(ConfigError, match="no predictor"):
        Reward(space, RewardConfig(b1=0.1), (1, 8, 8), 10)


def test_predictions_are_cached_per_architecture():
    predictor = CountingPredictor()
    cache = PredictionCache(predictor)
    a, b = (0, 1, 2, 0, 3), (1, 1, 1, 0, 1)
    np.testing.assert_allclose(cache([a, b, a]), [78.0, 82.0, 78.0])
    np.testing.assert_allclose(cache([b, a]), [82.0, 78.0])
    assert sorted(predictor.asked) == sorted([a, b])  # each asked once
    assert cache.calls == 1


def test_predictor_objects_with_predict_are_accepted():
    class WithPredict:
        def predict(self, archs):
            return np.full(len(archs), 55.0)

    np.testing.assert_allclose(PredictionCache(WithPredict())([(0, 0, 0, 0, 0)]), [55.0])
    with pytest.raises(ConfigError, match="predictor"):
        PredictionCache(42)


@pytest.mark.parametrize("bad, message", [
    (lambda archs: np.zeros(len(archs) + 1), "values for"),
    (lambda archs: np.full(len(archs), np.nan), "non-finite"),
])
def test_bad_predictor_output_is_reported(bad, message):
    with pytest.raises(ConfigError, match=message):
        PredictionCache(bad)([(0, 0, 0, 0, 0)])


def test_non_finite_cross_entropy_is_a_training_error():
    reward = Reward(ToySpace(), RewardConfig(), (1, 8, 8), 10)
    with pytest.raises(TrainingError, match="diverged"):
        reward([float("nan")], [(0, 0, 0, 0, 0)])


@pytest.mark.parametrize("values", [{"b1": -1.0}, {"b2": -0.1}, {"b2": float("inf")}])
def test_reward_config_rejects_negative_or_infinite_weights(values):
    with pytest.raises(ConfigError):
        RewardConfig(**values)


def test_batch_statistics_normalise_with_the_batch_and_leave_running_stats():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    with torch.no_grad():
        model[1].running_mean.fill_(5.0)
        model[1].running_var.fill_(9.0)
    model.eval()
    x = torch.randn(16, 1, 6, 6)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with batch_statistics(model):
        out = model(x)
        assert model.training and not torch.is_grad_enabled()
    # equals a train-mode pass with batch statistics...
    reference = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, track_running_stats=False), nn.ReLU())
    reference.load_state_dict({k: v for k, v in state.items() if "running" not in k and "num_batches" not in k})
    torch.testing.assert_close(out, reference.train()(x))
    # ...and leaves every buffer and flag as it was
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key])
    assert not model.training and model[1].track_running_stats


def test_batch_statistics_reused_restores_mixed_flags_and_honours_custom_train():
    from wpnas.search.reward import BatchStatistics

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4), nn.ReLU()))
    model.train()
    model[2].eval()  # a part in eval mode, one BN without running statistics
    model[1].track_running_stats = False
    stats = BatchStatistics(model)
    before = {name: (m.training, getattr(m, "track_running_stats", None)) for name, m in model.named_modules()}
    x = torch.randn(8, 1, 6, 6)
    for _ in range(2):  # reusable
        with stats():
            assert all(m.training for m in model.modules()) and not model[2][0].track_running_stats
            out = model(x)
        assert {name: (m.training, getattr(m, "track_running_stats", None))
                for name, m in model.named_modules()} == before
    reference = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, track_running_stats=False),
                              nn.Sequential(nn.BatchNorm2d(4, track_running_stats=False), nn.ReLU()))
    reference.load_state_dict(model.state_dict(), strict=False)
    torch.testing.assert_close(out, reference.train()(x))
    with pytest.raises(RuntimeError, match="boom"):  # restored after an error inside too
        with stats():
            raise RuntimeError("boom")
    assert model[2][0].track_running_stats and not model[2].training

    class Custom(nn.Module):  # a module that overrides train(): model.train() runs, so the override does
        calls = []

        def train(self, mode=True):
            Custom.calls.append(mode)
            return super().train(mode)

    custom = nn.Sequential(nn.BatchNorm2d(2), Custom()).eval()
    Custom.calls.clear()
    with BatchStatistics(custom)():
        assert custom.training and custom[1].training and Custom.calls == [True]
    assert not custom.training and not custom[1].training and custom[0].track_running_stats
