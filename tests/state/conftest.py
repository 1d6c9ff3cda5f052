"""Fixtures for the state-layer tests (real files in a temporary state directory)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The helpers module sits beside this file; make it importable whatever pytest's import mode.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """An empty state directory, named as llenergymeasure names its own."""
    path = tmp_path / ".state"
    path.mkdir()
    return path
