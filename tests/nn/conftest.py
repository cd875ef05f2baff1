"""Tiny configurations of both NATS spaces that run the real code paths in milliseconds."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

from tests.conftest import randomize_bn  # noqa: F401  (used by the fixtures; re-exported)
from wpnas.spaces import get_space

#: (space name, options, input channels, image size): small, and for SSS with widths
#: that make cells after a reduction change width (so the conversions run).
SMALL = {
    "nats_tss": ({"C": 4, "N": 2}, 3, 8),
    "nats_sss": ({"channels": [2, 4, 6]}, 3, 8),
}
NUM_CLASSES = 5




@pytest.fixture(params=sorted(SMALL))
def small(request):
    """(space, supernet, input batch) for one space; BN randomised, seeded."""
    name = request.param
    options, in_channels, size = SMALL[name]
    torch.manual_seed(0)
    space = get_space(name, **options)
    supernet = space.build_supernet(in_channels, NUM_CLASSES)
    randomize_bn(supernet)
    x = torch.randn(6, in_channels, size, size, generator=torch.Generator().manual_seed(1))
    return space, supernet, x


def archs_of(space, n: int = 5, seed: int = 0) -> list[tuple[int, ...]]:
    """Seeded sample that always includes the smallest and largest choice tuples."""
    rng = np.random.default_rng(seed)
    lowest = tuple(0 for _ in space.num_choices)
    highest = tuple(k - 1 for k in space.num_choices)
    return [lowest, highest, *space.sample(rng, n)]


@pytest.fixture()
def helpers():
    """The helper functions above, for test modules (conftest is not importable)."""
    return SimpleNamespace(randomize_bn=randomize_bn, archs_of=archs_of, num_classes=NUM_CLASSES)

