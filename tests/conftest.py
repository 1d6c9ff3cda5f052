"""Suite-wide: no test reads or writes the user's own expwatch preferences; runners check their cached JSON."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.preferences import CONFIG_ENV
from state.doc_json import CHECK_ENV

# Every runner a test starts compares its cached state-file JSON with the document's own.
os.environ[CHECK_ENV] = "1"


@pytest.fixture(autouse=True, scope="session")
def private_preferences() -> Iterator[Path]:
    """A config path of the suite's own, inherited by every process the tests start."""
    with tempfile.TemporaryDirectory(prefix="expwatch-config-") as folder:
        path = Path(folder) / "config.json"
        before = os.environ.get(CONFIG_ENV)
        os.environ[CONFIG_ENV] = str(path)
        try:
            yield path
        finally:
            if before is None:
                os.environ.pop(CONFIG_ENV, None)
            else:
                os.environ[CONFIG_ENV] = before


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch):
    """Sets the process's time zone (``TZ`` and ``time.tzset()``); the old one is back afterwards."""

    def use(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()
