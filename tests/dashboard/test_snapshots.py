"""Snapshot tests of the main screen (frozen clock, relative paths, static GPUs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.dashboard.conftest import populate
from tests.dashboard.helpers import make_app, wait_for


@pytest.fixture
def relative_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The state dir as a relative path, so no temp path appears on screen."""
    root = tmp_path / "state"
    root.mkdir()
    populate(root)
    monkeypatch.chdir(tmp_path)
    return Path("state")


async def _settled(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.scan_complete, what="initial scan")
    if app.options.gpus:
        from widgets.gpu_panel import GpuPanel

        panel = app.screen_stack[0].query_one(GpuPanel)
        await wait_for(pilot, lambda: panel.shown is not None and "sweep-alive" in panel.shown.plain, what="GPU sample")
    await pilot.pause(0.1)


def test_main_screen_80x24(snap_compare, relative_state: Path):
    app = make_app(relative_state, gpus=True, watch=False, refresh=3600)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_settled)


def test_main_screen_160x48(snap_compare, relative_state: Path):
    app = make_app(relative_state, gpus=True, watch=False, refresh=3600)
    assert snap_compare(app, terminal_size=(160, 48), run_before=_settled)


def test_read_only_80x24(snap_compare, relative_state: Path):
    app = make_app(relative_state, read_only=True, gpus=False, watch=False)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_settled)


def _opening(key: str, dialog: str, row: str | None = None):
    """A ``run_before`` that presses ``key`` (on ``row`` if given) and waits for the ``dialog`` screen."""

    async def run_before(pilot) -> None:
        await _settled(pilot)
        if row is not None:
            pilot.app.screen_stack[0].table.move_cursor_to_key(row)
        await pilot.press(key)
        await wait_for(pilot, lambda: pilot.app.screen.__class__.__name__ == dialog, what=dialog)
        await pilot.pause(0.1)

    return run_before


def test_mark_stale_dialog(snap_compare, relative_state: Path):
    app = make_app(relative_state, gpus=False, watch=False)
    assert snap_compare(app, terminal_size=(100, 30), run_before=_opening("S", "ConfirmDialog"))


def test_resume_dialog_80x24(snap_compare, relative_state: Path, monkeypatch: pytest.MonkeyPatch):
    """A failed experiment: the dialog offers the resume that retries its failed runs; paths shown
    relative to the working directory, the buttons on screen at 80x24."""
    monkeypatch.setattr(sys, "executable", "python3")
    app = make_app(relative_state, gpus=False, watch=False)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_opening("R", "ConfirmDialog", "sweep-failed"))


def test_column_picker_80x24(snap_compare, relative_state: Path):
    app = make_app(relative_state, gpus=False, watch=False)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_opening("c", "ColumnPicker"))
