"""Fixtures for the search-space tests: the reference tables and cost fixture."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

SHARED_DATA = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


def _require(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"reference file {path} is absent")
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="session")
def nb201_rows() -> list[dict[str, str]]:
    return _rows(_require("nb201/nb201_cifar10.csv"))


@pytest.fixture(scope="session")
def sss_rows() -> list[dict[str, str]]:
    return _rows(_require("nats_sss/nats_sss_cifar10.csv"))


@pytest.fixture(scope="session")
def cost_fixture() -> dict:
    return json.loads(_require("nats_cost_fixture.json").read_text())

