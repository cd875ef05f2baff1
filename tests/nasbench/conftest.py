"""Fixtures for the benchmark-table and metric tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def shared_tables(shared_data: Path) -> Path:
    """The reference tables beside the repo; skip when absent (fresh machines)."""
    if not (shared_data / "nb201").is_dir() or not (shared_data / "nats_sss").is_dir():
        pytest.skip(f"shared reference tables not found under {shared_data}")
    return shared_data

