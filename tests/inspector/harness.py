"""A tiny host app for the inspector, and bounded waits (never fixed sleeps)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Static

from app.screens.inspector import InspectorScreen
from state.store import StateStore
from state.verdict import Liveness, StaleVerdict
from tests.inspector.fixtures import FROZEN

ALIVE = StaleVerdict(
    Liveness.ALIVE,
    "coordinator pid 4242 on gpu-node-7: running (start time matches)",
    ("coordinator pid 4242 on gpu-node-7: running (start time matches)", "worker pid 4251 on gpu-node-7: no such process"),
)


def frozen_now() -> datetime:
    return FROZEN


class InspectorHost(App[None]):
    """Shows a placeholder main screen and pushes the inspector on mount."""

    TITLE = "inspector"

    def __init__(self, store: StateStore, key: str, **screen_kwargs: Any) -> None:
        super().__init__()
        self.store = store
        self.key = key
        screen_kwargs.setdefault("now", frozen_now)
        self.screen_kwargs = screen_kwargs
        self.inspector: InspectorScreen | None = None

    def compose(self) -> ComposeResult:
        yield Static("main screen", id="main-placeholder")

    def on_mount(self) -> None:
        self.inspector = InspectorScreen(self.store, self.key, **self.screen_kwargs)
        self.push_screen(self.inspector)


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], bool], *, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.02)


async def loaded(pilot: Pilot[Any], *, extras: bool = True) -> InspectorScreen:
    """Wait until the inspector has applied its first read (and its extras)."""
    app = pilot.app
    assert isinstance(app, InspectorHost)
    await wait_for(pilot, lambda: app.inspector is not None and app.inspector.snapshot is not None, what="first read")
    screen = app.inspector
    assert screen is not None
    if extras:
        await wait_for(pilot, lambda: screen.extras is not None, what="extras")
    return screen
