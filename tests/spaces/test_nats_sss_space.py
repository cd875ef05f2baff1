"""NATS-Bench SSS: strings, official index order, enumeration and bad input."""

from __future__ import annotations

import pytest

from wpnas.errors import ArchitectureError, ConfigError
from wpnas.spaces import get_space
from wpnas.spaces.nats_sss import SSS_CELL
from wpnas.spaces.nats_tss import NatsTSS


@pytest.fixture(scope="module")
def space():
    return get_space("nats_sss")


def test_every_official_string_round_trips_in_official_order(space, sss_rows):
    assert len(sss_rows) == 32_768
    for row in sss_rows:
        arch = space.from_string(row["arch"])
        assert space.to_string(arch) == row["arch"]
        assert space.index(arch) == int(row["index"])


def test_enumeration_covers_the_space_once(space):
    archs = list(space.enumerate())
    assert space.size == len(archs) == len(set(archs)) == 32_768
    assert space.to_string(archs[0]) == "8:8:8:8:8" and space.to_string(archs[-1]) == "64:64:64:64:64"


def test_fixed_cell_is_the_official_one(space):
    assert space.cell_ops() == NatsTSS().cell_ops(SSS_CELL)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("8:16:24:32", "has 4 channel counts"),
        ("8:16:24:32:40:48", "has 6 channel counts"),
        ("8:16:20:32:64", "channel 20 at position 2"),
        ("8:16:x:32:64", "position 2"),
        ("8,16,24,32,64", "has 1 channel counts"),
    ],
)
def test_malformed_strings_are_rejected_with_the_bad_part(space, text, fragment):
    with pytest.raises(ArchitectureError, match=fragment):
        space.from_string(text)


@pytest.mark.parametrize("arch", [(0, 0, 0, 0), (0, 0, 0, 0, 8), "8:8:8:8:9", [None] * 5])
def test_bad_archs_are_rejected_before_building(space, arch):
    with pytest.raises(ArchitectureError):
        space.build_network(arch)
    with pytest.raises(ArchitectureError):
        space.cost(arch)


def test_bad_options():
    with pytest.raises(ConfigError, match="increasing"):
        get_space("nats_sss", channels=[16, 8])
    with pytest.raises(ConfigError, match="unknown setting"):
        get_space("nats_sss", C=4)


def test_widths_shape_the_network():
    space = get_space("nats_sss", channels=[2, 4, 6])
    net = space.build_network("2:6:4:2:6", in_channels=1, num_classes=3)
    assert net.stem.conv.weight.shape == (2, 1, 3, 3)
    assert net.cells[1].conv_a.conv.weight.shape == (6, 2, 3, 3)
    # the cell after a reduction converts 6 -> 4 channels on its node-0 ops
    assert net.cells[2].edges[0].conv.weight.shape == (4, 6, 3, 3)
    assert net.cells[2].edges[3].convert.conv.weight.shape == (4, 6, 1, 1)
    assert net.cells[0].edges[3].convert is None  # skip_connect is the identity when widths match
    assert net.head.classifier.weight.shape == (3, 6)
