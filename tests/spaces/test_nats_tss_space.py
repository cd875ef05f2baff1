"""NATS-Bench TSS: strings, decisions, enumeration and bad input."""

from __future__ import annotations

import pytest

from wpnas.errors import ArchitectureError, ConfigError
from wpnas.spaces.nats_skeleton import CELL_EDGES
from wpnas.spaces import get_space
from wpnas.spaces.nats_tss import TSS_EDGES, TSS_OPS

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def space():
    return get_space("nats_tss")


def test_every_official_string_round_trips(space, nb201_rows):
    assert len(nb201_rows) == 15_625
    archs = set()
    for row in nb201_rows:
        arch = space.from_string(row["arch"])
        assert space.to_string(arch) == row["arch"]
        archs.add(arch)
    assert len(archs) == 15_625  # the table covers the whole space once


def test_enumeration_covers_the_space_once(space):
    archs = list(space.enumerate())
    assert space.size == len(archs) == len(set(archs)) == 15_625
    assert all(space.arch_from_index(space.index(a)) == a for a in archs[::997])


def test_edges_match_the_skeleton():
    assert TSS_EDGES == CELL_EDGES


def test_decision_names_and_choices(space):
    assert [d.name for d in space.decisions] == ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]
    assert all(d.choices == TSS_OPS for d in space.decisions)
    assert space.cell_ops(BEST) == ("nor_conv_3x3",) * 3 + ("skip_connect",) + ("nor_conv_3x3",) * 2


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "nor_conv_5x5"),  # wrong op name
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "has 1 edges"),  # wrong edge count
        ("|none~0|+|none~0|none~1|+|none~0|none~1|", "has 2 edges"),
        ("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|", "should read from node 1"),  # wrong source
        ("|none~0|+|none~0|none~1|", "node groups"),  # missing node
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "must start and end"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "op~k"),
        ("", "node groups"),
    ],
)
def test_malformed_strings_are_rejected_with_the_bad_part(space, text, fragment):
    with pytest.raises(ArchitectureError, match=fragment.replace("|", r"\|")):
        space.from_string(text)


@pytest.mark.parametrize("arch", [(0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 5), (0, 0, 0, 0, 0, -1), "nope", None, 3])
def test_bad_choice_tuples_are_rejected_before_building(space, arch):
    with pytest.raises(ArchitectureError):
        space.build_network(arch)
    with pytest.raises(ArchitectureError):
        space.cost(arch)


def test_bad_options_and_build_arguments():
    with pytest.raises(ConfigError, match="C and N"):
        get_space("nats_tss", C=0)
    with pytest.raises(ConfigError, match="unknown setting"):
        get_space("nats_tss", channels=4)
    space = get_space("nats_tss", C=4, N=1)
    with pytest.raises(ConfigError, match="in_channels"):
        space.build_network(BEST, in_channels=0)
    with pytest.raises(ConfigError, match="num_classes"):
        space.build_supernet(num_classes=0)


def test_options_shape_the_network():
    small = get_space("nats_tss", C=4, N=2).build_network(BEST, in_channels=1, num_classes=5)
    assert len(small.cells) == 3 * 2 + 2
    assert small.stem.conv.weight.shape == (4, 1, 3, 3)
    assert small.head.classifier.weight.shape == (5, 16)
