"""Self-critical policy gradient (equation 7): sign, baseline and convergence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wpnas.errors import ConfigError, TrainingError
from wpnas.search.distribution import ArchDistribution
from wpnas.search.self_critical import SelfCriticalOptimizer, self_critical_loss
from wpnas.spaces import get_space

from .conftest import ToySpace


def _score_table(space, seed: int) -> list[np.ndarray]:
    """Random scores per (decision, choice) with one choice per decision ahead by >= 0.5."""
    rng = np.random.default_rng(seed)
    table = []
    for k in space.num_choices:
        scores = rng.uniform(-1.0, 0.0, size=k)
        scores[rng.integers(k)] = 0.5
        table.append(scores)
    return table


def _reward(table, arch) -> float:
    return float(sum(table[l][a] for l, a in enumerate(arch)))


def _search(space, table, steps: int, sign: float = 1.0, samples: int = 4, seed: int = 0):
    """Repeated self-critical updates on a known reward; ``sign=-1`` flips the policy gradient."""
    dist = ArchDistribution(space)
    optimizer = torch.optim.Adam(dist.parameters(), lr=0.05, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        archs = dist.sample(samples, gen)
        rewards = [_reward(table, a) for a in archs]
        baseline = _reward(table, dist.argmax())
        optimizer.zero_grad()
        (sign * self_critical_loss(dist, archs, rewards, baseline)).backward()
        optimizer.step()
    return dist


@pytest.mark.parametrize(
    "space", [ToySpace(), get_space("nats_tss", C=4, N=1), get_space("nats_sss", channels=[4, 8, 16])],
    ids=lambda s: s.name,
)
def test_updates_drive_argmax_to_the_best_architecture(space):
    table = _score_table(space, seed=3)
    best = tuple(int(np.argmax(t)) for t in table)
    dist = _search(space, table, steps=400)
    assert dist.argmax() == best
    assert dist.probability(best) > 0.5


def test_a_flipped_sign_does_not_find_the_best():
    """The convergence test has teeth: the same loop with the sign flipped runs to the worst."""
    space = ToySpace()
    table = _score_table(space, seed=3)
    best = tuple(int(np.argmax(t)) for t in table)
    worst = tuple(int(np.argmin(t)) for t in table)
    assert best != worst
    dist = _search(space, table, steps=400, sign=-1.0)
    assert dist.argmax() != best
    assert dist.argmax() == worst


@pytest.mark.parametrize("delta, direction", [(-1.0, -1), (1.0, 1), (0.0, 0)])
def test_one_step_moves_a_sample_by_the_sign_of_its_advantage(delta, direction):
    """Worse than greedy -> less likely; better -> more likely; equal -> alpha untouched."""
    space = ToySpace()
    dist = ArchDistribution(space)
    sample = (1, 2, 1, 0, 3)
    before = dist.probability(sample)
    alpha_before = dist.alpha.detach().clone()
    stats = SelfCriticalOptimizer(dist, lr=0.1).step([sample], [5.0 + delta], baseline=5.0)
    after = dist.probability(sample)
    assert stats["advantage_mean"] == pytest.approx(delta)
    if direction == 0:
        torch.testing.assert_close(dist.alpha.detach(), alpha_before)
    else:
        assert (after - before) * direction > 0


def test_gradient_matches_the_analytic_policy_gradient():
    """d loss / d alpha[l, k] = -(r - r_hat) * (1[k == A_l] - p_lk) / S, zero on padding."""
    space = ToySpace()
    dist = ArchDistribution(space)
    with torch.no_grad():
        dist.alpha.copy_(torch.randn(dist.alpha.shape, generator=torch.Generator().manual_seed(0)))
    archs = [(1, 4, 2, 0, 3), (0, 1, 2, 0, 0)]
    rewards, baseline = np.array([0.3, -1.2]), 0.1
    self_critical_loss(dist, archs, rewards, baseline).backward()
    p = dist.prob_matrix().double()
    expected = torch.zeros_like(p)
    for arch, r in zip(archs, rewards):
        onehot = torch.zeros_like(p)
        onehot[torch.arange(len(arch)), torch.tensor(arch)] = 1.0
        expected += -(r - baseline) * (onehot - p) / len(archs)
    expected[~dist.mask] = 0.0
    torch.testing.assert_close(dist.alpha.grad.double(), expected, atol=1e-6, rtol=1e-5)


def test_entropy_bonus_pushes_towards_uniform():
    space = ToySpace()
    dist = ArchDistribution(space)
    with torch.no_grad():
        dist.alpha[:, 0] = 1.0
    before = dist.entropy().item()
    optimizer = SelfCriticalOptimizer(dist, lr=0.05, entropy_weight=1.0)
    for _ in range(5):  # zero advantage: only the entropy term acts
        optimizer.step([dist.argmax()], [0.0], baseline=0.0)
    assert dist.entropy().item() > before


def test_bad_settings_and_non_finite_rewards():
    dist = ArchDistribution(ToySpace())
    with pytest.raises(ConfigError, match="alpha_lr"):
        SelfCriticalOptimizer(dist, lr=0.0)
    with pytest.raises(ConfigError, match="alpha_betas"):
        SelfCriticalOptimizer(dist, betas=(0.9, 1.0))
    with pytest.raises(ConfigError, match="entropy_weight"):
        SelfCriticalOptimizer(dist, entropy_weight=-1.0)
    with pytest.raises(TrainingError, match="non-finite reward"):
        SelfCriticalOptimizer(dist).step([(0, 0, 0, 0, 0)], [float("nan")], baseline=0.0)
    with pytest.raises(ValueError):
        self_critical_loss(dist, [(0, 0, 0, 0, 0)], [1.0, 2.0], 0.0)
