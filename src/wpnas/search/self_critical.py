"""Self-critical policy gradient for alpha (paper Section 3.4, equations 4-7).

For samples A_1..A_S drawn from p(A | alpha) and the greedy architecture
``Â = argmax p(A | alpha)`` evaluated on the same validation batch:

    loss = -1/S * sum_i (r(A_i) - r(Â)) * log p(A_i | alpha)  -  entropy_weight * H(alpha)

whose gradient is equation (7) averaged over the samples. The greedy reward is a
baseline that does not depend on the sample, so the estimate stays unbiased while its
variance drops; a sample equal to Â has zero advantage and does not move alpha.

alpha optimizer: Adam, default ``lr = 3e-4``, ``betas = (0.5, 0.999)``, no weight decay.
Adam divides the step by the running gradient scale, so the per-step change of a logit
is typically about ``lr`` whatever the units of the reward; b1 and b2 then only set the
*relative* weight of the reward terms, which is what they are meant to do. 3e-4 with
betas (0.5, 0.999) is DARTS's setting for its architecture parameters; over the paper's
300 epochs (~1e5 steps on the NAS-Bench-201 CIFAR-10 split at batch 64) it lets a logit
move by tens of units, far more than needed to settle, while one noisy batch moves it by
almost nothing. DARTS also decays alpha (1e-3); here decay would pull alpha back towards
uniform, so it is off by default (``alpha_weight_decay``). Short runs on small data
(a few hundred steps) need a larger ``alpha_lr`` (e.g. 1e-2) for alpha to move at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from wpnas.errors import ConfigError, TrainingError
from wpnas.search.distribution import ArchDistribution
from wpnas.spaces.base import Arch

DEFAULT_ALPHA_LR = 3e-4
DEFAULT_ALPHA_BETAS = (0.5, 0.999)


def self_critical_loss(
    dist: ArchDistribution,
    archs: Sequence[Arch] | torch.Tensor,
    rewards: Sequence[float] | np.ndarray,
    baseline: float,
    entropy_weight: float = 0.0,
) -> torch.Tensor:
    """Equation (7) as a loss whose gradient with respect to alpha is the update direction."""
    advantage = torch.as_tensor(np.asarray(rewards, dtype=np.float64) - float(baseline), dtype=dist.alpha.dtype)
    advantage = advantage.to(dist.alpha.device).reshape(-1)
    log_prob = dist.log_prob(archs)
    if advantage.shape != log_prob.shape:
        raise ValueError(f"got {advantage.numel()} rewards for {log_prob.numel()} architectures")
    loss = -(advantage * log_prob).mean()
    if entropy_weight:
        loss = loss - entropy_weight * dist.entropy()
    return loss


class SelfCriticalOptimizer:
    """Adam on alpha driven by :func:`self_critical_loss`."""

    def __init__(
        self,
        dist: ArchDistribution,
        lr: float = DEFAULT_ALPHA_LR,
        betas: Sequence[float] = DEFAULT_ALPHA_BETAS,
        weight_decay: float = 0.0,
        entropy_weight: float = 0.0,
    ) -> None:
        check_alpha_settings(lr, betas, weight_decay, entropy_weight)
        self.dist = dist
        self.entropy_weight = float(entropy_weight)
        self.optimizer = torch.optim.Adam(
            dist.parameters(), lr=float(lr), betas=tuple(float(b) for b in betas), weight_decay=float(weight_decay)
        )

    def step(self, archs: Sequence[Arch], rewards: Sequence[float] | np.ndarray, baseline: float) -> dict[str, float]:
        """One update from sampled ``archs``, their ``rewards`` and the greedy ``baseline`` reward."""
        rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
        if not (np.isfinite(rewards).all() and math.isfinite(baseline)):
            raise TrainingError(f"non-finite reward in the alpha update (rewards {rewards}, baseline {baseline})")
        self.optimizer.zero_grad(set_to_none=True)
        loss = self_critical_loss(self.dist, archs, rewards, baseline, self.entropy_weight)
        loss.backward()
        self.optimizer.step()
        if not bool(torch.isfinite(self.dist.alpha).all()):
            raise TrainingError("alpha became non-finite after a policy-gradient step; lower alpha_lr")
        advantage = rewards - baseline
        return {
            "alpha_loss": float(loss.detach()),
            "advantage_mean": float(advantage.mean()),
            "advantage_abs_mean": float(np.abs(advantage).mean()),
        }

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)


def check_alpha_settings(lr: float, betas: Sequence[float], weight_decay: float, entropy_weight: float) -> None:
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"alpha_lr: {lr!r} must be a finite number > 0")
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ConfigError(f"alpha_betas: {list(betas)!r} must be two numbers in [0, 1)")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ConfigError(f"alpha_weight_decay: {weight_decay!r} must be >= 0")
    if not (math.isfinite(entropy_weight) and entropy_weight >= 0):
        raise ConfigError(f"entropy_weight: {entropy_weight!r} must be >= 0")
