"""The hook-based FLOPs/params counter and its counting convention."""

from __future__ import annotations

import pytest
import torch.nn as nn

from wpnas.errors import ConfigError
from wpnas.nn.flops import count_flops_params
from wpnas.spaces import get_space


def test_convention_counts_conv_and_linear_with_bias_but_not_pooling_or_bn():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=True),  # 3*4*9*64 + 4*64
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AvgPool2d(2),  # 8x8 -> 4x4, free
        nn.Conv2d(4, 2, 1, bias=False),  # 4*2*16
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8, 5),  # 8*5 + 5
    )
    cost = count_flops_params(model, (3, 8, 8))
    assert cost.flops_m * 1e6 == pytest.approx(3 * 4 * 9 * 64 + 4 * 64 + 4 * 2 * 16 + 8 * 5 + 5)
    params = (3 * 4 * 9 + 4) + 8 + 4 * 2 + (8 * 5 + 5)
    assert cost.params_m * 1e6 == pytest.approx(params)
    assert model.training  # mode restored


def test_supernet_path_is_counted_at_the_width_it_runs():
    space = get_space("nats_sss", channels=[4, 8])
    supernet = space.build_supernet(3, 10)
    for arch in [(0, 1, 0, 1, 1), (1, 0, 1, 0, 0)]:
        counted = count_flops_params(supernet, (3, 16, 16), lambda x, a=arch: supernet(x, a))
        assert counted.flops_m == pytest.approx(space.cost(arch, (3, 16, 16), 10).flops_m, abs=1e-9)


def test_bad_shape():
    with pytest.raises(ConfigError, match="input_shape"):
        count_flops_params(nn.Linear(2, 2), (2, 2))
