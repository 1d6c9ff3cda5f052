"""Fixtures for runner tests: a state directory, a study, and cleanup of every process they launch."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.liveness import identity_of
from state.native import OwnerIdentity

from tests.runtime.helpers import terminate_all


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def launched() -> list[OwnerIdentity]:
    """Identities of detached processes a test launched; any still running at the end is killed."""
    owners: list[OwnerIdentity] = []
    yield owners
    terminate_all(owners)


@pytest.fixture
def remember(launched: list[OwnerIdentity]):
    def add(pid: int) -> int:
        launched.append(identity_of(pid))
        return pid

    return add
