"""A learnable synthetic accuracy over any space (known function of the choices)."""

from __future__ import annotations

import numpy as np


def synthetic_accuracy(space, tokens: np.ndarray) -> np.ndarray:
    """A known additive function of the one-hot plus one interaction, in percent: squashed
    monotonically into (0, 100), since accuracies outside are refused (the ranking is the
    additive function's; with many decisions it would reach past 100)."""
    rng = np.random.default_rng(123)
    weights = rng.normal(size=(space.num_decisions, space.max_choices))
    tokens = np.asarray(tokens)
    score = weights[np.arange(space.num_decisions)[None, :], tokens].sum(axis=1)
    score = score + 0.5 * (tokens[:, 0] == tokens[:, 1])
    return 50.0 + 50.0 * np.tanh((20.0 + 5.0 * score) / 50.0)


def sample_pairs(space, n: int, seed: int = 0):
    archs = space.sample_unique(np.random.default_rng(seed), n)
    tokens = np.asarray(archs, dtype=np.int64)
    return archs, synthetic_accuracy(space, tokens)
