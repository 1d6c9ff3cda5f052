"""Every inspector test runs in its own temp folder, in UTC, with the store's clock frozen."""

from __future__ import annotations

import os
import time
from datetime import datetime

import pytest

import state.store
from tests.inspector.fixtures import FROZEN


class _FrozenDatetime(datetime):
    """``datetime`` whose ``now()`` is the fixture's frozen instant (the store stamps files with it)."""

    @classmethod
    def now(cls, tz=None):  # type: ignore[override]
        return FROZEN.astimezone(tz) if tz is not None else FROZEN.replace(tzinfo=None)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    monkeypatch.setattr(state.store, "datetime", _FrozenDatetime)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()
