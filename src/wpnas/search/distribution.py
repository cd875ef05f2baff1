"""The architecture distribution p(A | alpha) of paper Section 3.1, equation (1).

One categorical distribution per decision, independent of each other:
``p(A | alpha) = prod_l softmax(alpha^l)[A^l]``. Decisions may have different choice
counts (a DARTS parent-pair decision next to an operation decision), so alpha is one
padded (L, K_max) parameter whose padding is masked to ``-inf`` before the softmax:
padded choices have probability exactly 0, are never sampled and get no gradient.

alpha starts at zero, the uniform distribution ("for fair search", Section 3.4). It is a
few dozen numbers and lives on the CPU: sampling must hand Python tuples to the SuperNet
anyway, and the reward is a handful of scalars.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from wpnas.errors import ArchitectureError, CheckpointError
from wpnas.spaces.base import Arch, SearchSpace


class ArchDistribution(nn.Module):
    """Independent categorical distributions, one per decision of ``space``."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        sizes = torch.tensor(space.num_choices, dtype=torch.long)
        mask = torch.arange(space.max_choices)[None, :] < sizes[:, None]
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("sizes", sizes, persistent=False)
        self.alpha = nn.Parameter(torch.zeros(space.num_decisions, space.max_choices))

    # -- the distribution ------------------------------------------------------------
    def logits(self) -> torch.Tensor:
        """(L, K_max) alpha with padded choices at ``-inf`` (differentiable)."""
        return self.alpha.masked_fill(~self.mask, float("-inf"))

    def log_probs(self) -> torch.Tensor:
        """(L, K_max) log-probabilities; ``-inf`` at padded choices."""
        return torch.log_softmax(self.logits(), dim=1)

    def prob_matrix(self) -> torch.Tensor:
        """(L, K_max) probabilities; 0 at padded choices (detached)."""
        with torch.no_grad():
            return torch.softmax(self.logits(), dim=1)

    def probs(self) -> list[np.ndarray]:
        """Probabilities per decision (one float64 array of length K_l each)."""
        matrix = self.prob_matrix().double().cpu().numpy()
        return [matrix[l, :k].copy() for l, k in enumerate(self.space.num_choices)]

    def tokens(self, archs: torch.Tensor | Iterable[Iterable[int]]) -> torch.Tensor:
        """(B, L) long tensor of validated choice indices."""
        if isinstance(archs, torch.Tensor):
            if archs.is_floating_point() or archs.dim() != 2 or archs.shape[1] != self.space.num_decisions:
                raise ArchitectureError(
                    f"{self.space.name}: expected a (B, {self.space.num_decisions}) integer tensor of choices, "
                    f"got {archs.dtype} {tuple(archs.shape)}"
                )
            tokens = archs.to(device=self.alpha.device, dtype=torch.long)
            bad = (tokens < 0) | (tokens >= self.sizes)
            if bool(bad.any()):
                row, col = (int(v) for v in bad.nonzero()[0])
                raise ArchitectureError(
                    f"{self.space.name}: choice {int(tokens[row, col])} for decision "
                    f"{self.space.decisions[col].name!r} is out of range 0..{int(self.sizes[col]) - 1}"
                )
            return tokens
        rows = [self.space.validate(a) for a in archs]
        if not rows:
            return torch.zeros((0, self.space.num_decisions), dtype=torch.long, device=self.alpha.device)
        return torch.tensor(rows, dtype=torch.long, device=self.alpha.device)

    def log_prob(self, archs: torch.Tensor | Iterable[Iterable[int]]) -> torch.Tensor:
        """(B,) ``log p(A | alpha)`` per architecture, differentiable with respect to alpha."""
        tokens = self.tokens(archs)
        per_decision = self.log_probs()[torch.arange(self.space.num_decisions)[None, :], tokens]
        return per_decision.sum(dim=1)

    def entropy(self) -> torch.Tensor:
        """Entropy of p(A | alpha) in nats: the sum of the per-decision entropies (differentiable)."""
        log_p = self.log_probs()
        # zero the -inf of padded choices first: 0 * -inf would put NaN into the gradient
        safe_log_p = log_p.masked_fill(~self.mask, 0.0)
        return -(safe_log_p.exp() * safe_log_p).masked_fill(~self.mask, 0.0).sum()

    def argmax(self) -> Arch:
        """``argmax_A p(A | alpha)``: the most likely choice per decision (ties: lowest index)."""
        with torch.no_grad():
            return tuple(int(i) for i in self.logits().argmax(dim=1))

    def probability(self, arch: Iterable[int]) -> float:
        """``p(arch | alpha)``."""
        with torch.no_grad():
            return float(self.log_prob([tuple(arch)]).exp()[0])

    # -- sampling --------------------------------------------------------------------
    def sample(self, n: int | None = None, generator: torch.Generator | None = None) -> Arch | list[Arch]:
        """Architecture(s) drawn from p(A | alpha); one tuple when ``n`` is None."""
        return self._draw(self.prob_matrix(), n, generator)

    def sample_uniform(self, n: int | None = None, generator: torch.Generator | None = None) -> Arch | list[Arch]:
        """Architecture(s) drawn uniformly from the space, whatever alpha is (the SPOS ablation)."""
        return self._draw(self.mask.to(torch.float32), n, generator)

    def _draw(self, weights: torch.Tensor, n: int | None, generator: torch.Generator | None) -> Arch | list[Arch]:
        count = 1 if n is None else int(n)
        if count < 0:
            raise ArchitectureError(f"cannot draw {count} architectures")
        if count == 0:
            return []
        picks = torch.multinomial(weights.cpu(), count, replacement=True, generator=generator)  # (L, n)
        archs = [tuple(int(v) for v in column) for column in picks.t().tolist()]
        return archs[0] if n is None else archs

    # -- persistence -----------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """What a stored alpha must match to be loaded here."""
        return {"space": self.space.name, "options": self.space.options(), "num_choices": list(self.space.num_choices)}

    def to_checkpoint(self) -> dict[str, Any]:
        return {"describe": self.describe(), "alpha": self.alpha.detach().cpu().clone()}

    def load_checkpoint(self, data: dict[str, Any], source: str = "alpha checkpoint") -> None:
        """Load alpha written by :meth:`to_checkpoint`; another space raises ``CheckpointError``."""
        if not isinstance(data, dict) or "alpha" not in data or "describe" not in data:
            raise CheckpointError(f"{source} holds no architecture distribution (missing 'alpha' / 'describe')")
        mine = self.describe()
        diffs = [f"{k}: {data['describe'].get(k)!r} (expected {v!r})" for k, v in mine.items()
                 if data["describe"].get(k) != v]
        if diffs:
            raise CheckpointError(f"{source} was written for another search space: " + "; ".join(diffs))
        alpha = torch.as_tensor(data["alpha"], dtype=self.alpha.dtype)
        if tuple(alpha.shape) != tuple(self.alpha.shape):
            raise CheckpointError(f"{source}: alpha has shape {tuple(alpha.shape)}, expected {tuple(self.alpha.shape)}")
        with torch.no_grad():
            self.alpha.copy_(alpha)

    @classmethod
    def from_checkpoint(cls, space: SearchSpace, data: dict[str, Any], source: str = "alpha checkpoint"):
        dist = cls(space)
        dist.load_checkpoint(data, source)
        return dist


def chosen_probabilities(dist: ArchDistribution, arch: Sequence[int]) -> list[float]:
    """Probability of each chosen choice of ``arch`` (one per decision)."""
    probs = dist.probs()
    return [float(probs[l][a]) for l, a in enumerate(dist.space.validate(arch))]
