"""Fixtures for the benchmark-table and metric tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from wpnas.spaces import get_space

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture
def shared_tables() -> Path:
    """The reference tables beside the repo; skip when absent (fresh machines)."""
    if not (SHARED_DATA / "nb201").is_dir() or not (SHARED_DATA / "nats_sss").is_dir():
        pytest.skip(f"shared reference tables not found under {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def tss():
    return get_space("nats_tss")


@pytest.fixture
def sss():
    return get_space("nats_sss")
