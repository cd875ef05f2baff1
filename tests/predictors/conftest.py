"""Fixtures: a learnable synthetic accuracy over a space, and tiny predictor settings."""

from __future__ import annotations

import pytest

from wpnas.spaces import get_space


@pytest.fixture(params=["nats_tss", "nats_sss"])
def space(request):
    return get_space(request.param)



@pytest.fixture
def tiny():
    """Small, fast settings going through the same code paths as the defaults."""
    return dict(hidden=32, out_dim=16, embed_dim=16, layers=1, decoder_hidden=16, epochs=20, batch_size=25,
                support_size=10, lr=1e-2, heads=2, ensemble=1)
