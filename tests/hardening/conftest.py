"""Fixtures for the hardening tests (real files in a temporary state directory)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / ".state"
    path.mkdir()
    return path
