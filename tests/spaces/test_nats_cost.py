"""Exact NATS-Bench costs: the official fixture, the hook counter, speed and bad input."""

from __future__ import annotations

import time

import numpy as np
import pytest

from wpnas.errors import ArchitectureError, ConfigError
from wpnas.nn.flops import count_flops_params
from wpnas.spaces import get_space

CLASSES = {"cifar10": 10, "cifar100": 100}


@pytest.mark.parametrize("name", ["nats_tss", "nats_sss"])
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_cost_reproduces_the_official_figures(cost_fixture, name, dataset):
    space = get_space(name)
    for entry in cost_fixture[name].values():
        cost = space.cost(entry["arch"], (3, 32, 32), CLASSES[dataset])
        assert cost.flops_m == pytest.approx(entry[dataset]["flops_M"], abs=1e-6)
        assert cost.params_m == pytest.approx(entry[dataset]["params_M"], abs=1e-6)


@pytest.mark.parametrize("name", ["nats_tss", "nats_sss"])
def test_hook_count_of_the_official_network_reproduces_the_fixture(cost_fixture, name):
    space = get_space(name)
    for entry in cost_fixture[name].values():
        for dataset, classes in CLASSES.items():
            counted = count_flops_params(space.build_network(entry["arch"], 3, classes), (3, 32, 32))
            assert counted.flops_m == pytest.approx(entry[dataset]["flops_M"], abs=1e-6)
            assert counted.params_m == pytest.approx(entry[dataset]["params_M"], abs=1e-6)


SPACES = [
    ("nats_tss", {"C": 4, "N": 1}),
    ("nats_tss", {"C": 6, "N": 2}),
    ("nats_tss", {}),
    ("nats_sss", {}),
    ("nats_sss", {"channels": [3, 5, 8]}),
]
SHAPES = [((3, 32, 32), 10), ((1, 16, 16), 100), ((3, 8, 12), 7)]


@pytest.mark.parametrize(("name", "options"), SPACES)
def test_analytic_cost_equals_the_hook_count(name, options):
    space = get_space(name, **options)
    rng = np.random.default_rng(len(options) + len(name))
    for arch in space.sample(rng, 4):
        for shape, classes in SHAPES:
            expected = count_flops_params(space.build_network(arch, shape[0], classes), shape)
            got = space.cost(arch, shape, classes)
            assert got.flops_m == pytest.approx(expected.flops_m, abs=1e-9)
            assert got.params_m == pytest.approx(expected.params_m, abs=1e-9)


def test_tss_cost_of_special_cells():
    space = get_space("nats_tss")
    empty = space.cost("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    skips = space.cost("|skip_connect~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|avg_pool_3x3~1|skip_connect~2|")
    assert empty == skips  # parameter-free ops cost nothing; pooling is not counted
    full = space.cost("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    assert full.flops_m > empty.flops_m and full.params_m > empty.params_m


def test_sss_cost_grows_with_every_width():
    space = get_space("nats_sss")
    base = space.cost("8:8:8:8:8")
    for pos in range(5):
        widths = ["8"] * 5
        widths[pos] = "64"
        bigger = space.cost(":".join(widths))
        assert bigger.flops_m > base.flops_m and bigger.params_m > base.params_m


def test_costing_whole_spaces_is_fast():
    for name in ("nats_tss", "nats_sss"):
        space = get_space(name, **({"C": 12, "N": 3} if name == "nats_tss" else {}))
        start = time.perf_counter()
        costs = [space.cost(arch, (3, 24, 24), 11) for arch in space.enumerate()]
        elapsed = time.perf_counter() - start
        assert len(costs) == space.size
        assert elapsed < 10.0, f"{name}: {elapsed:.1f}s for {space.size} architectures"


@pytest.mark.parametrize("name", ["nats_tss", "nats_sss"])
def test_bad_cost_arguments_are_named(name):
    space = get_space(name)
    arch = space.sample(np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"\(3, 30, 30\)"):
        space.cost(arch, (3, 30, 30))
    with pytest.raises(ConfigError, match="input_shape"):
        space.cost(arch, (32, 32))
    with pytest.raises(ConfigError, match="num_classes"):
        space.cost(arch, (3, 32, 32), 0)
    with pytest.raises(ArchitectureError):
        space.cost(arch[:-1])
