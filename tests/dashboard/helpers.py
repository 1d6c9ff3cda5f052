"""Bounded waits and an app factory for dashboard tests (no fixed sleeps)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from app.app import DashboardOptions, ExpwatchApp

from tests.dashboard.conftest import FROZEN, ScriptedProbe, StaticGpuSource


def make_app(
    root: Path, *, read_only: bool = False, gpus: bool = False, probe=None, watch: bool = True, refresh: float = 0.2,
    extra_sources: tuple[Path, ...] = (),
) -> ExpwatchApp:
    options = DashboardOptions(sources=(root, *extra_sources), read_only=read_only, watch=watch, gpus=gpus, refresh=refresh)
    return ExpwatchApp(options, clock=lambda: FROZEN, probe=probe or ScriptedProbe(), gpu_source=StaticGpuSource())


async def wait_for(pilot, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
