"""The inspector's own keys and help, and text that wraps instead of being cut at 80x24."""

from __future__ import annotations

from textual.widgets import Static

from app.screens.confirm import HelpScreen
from app.screens.inspector import Section
from app.screens.inspector.screen import INSPECTOR_KEYS
from state.inspection.history import HistoryRow
from tests.inspector import fixtures
from tests.inspector.fixtures import create_experiment
from tests.inspector.harness import InspectorHost, loaded, wait_for
from widgets.history_log import HistoryLog
from widgets.run_table import RunTable

SMALL = (80, 24)
LONG_LINE = "x" * 150


def _footer_keys(screen) -> set[str]:
    return {binding.key for _, binding, enabled, _ in screen.active_bindings.values() if binding.show}


async def test_question_mark_shows_the_inspectors_own_keys_tabs_included():
    store, key, _ = create_experiment()
    app = InspectorHost(store, key)
    async with app.run_test(size=SMALL) as pilot:
        screen = await loaded(pilot)
        keys = _footer_keys(screen)
        assert {"escape", "1", "question_mark"} <= keys
        assert not keys & {"s", "R", "S", "C", "g", "d"}, "no main-screen keys in the inspector's footer"
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        assert app.screen.rows is INSPECTOR_KEYS and app.screen.title_text == "inspector keys"
        assert any(k == "1-7" and "as the bar shows them" in text and "Raw" in text for k, text in INSPECTOR_KEYS)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, what="help closed")


async def test_a_long_traceback_wraps_in_the_run_tab_at_80x24(monkeypatch):
    monkeypatch.setattr(fixtures, "TRACEBACK", fixtures.TRACEBACK + f'  File "/srv/{LONG_LINE}.py", line 1\n')
    store, key, _ = create_experiment()
    app = InspectorHost(store, key, section=Section.RUNS)
    async with app.run_test(size=SMALL) as pilot:
        screen = await loaded(pilot)
        screen.query_one(RunTable).move_cursor_to_key("r-0004")
        screen.query_one(RunTable).focus()
        await pilot.press("enter")
        exception = screen.query_one("#run-exception", Static)
        await wait_for(pilot, lambda: exception.region.height > 0, what="run tab")
        await pilot.pause()
        assert exception.region.right <= 80
        scroll = screen.query_one("#run-exception-scroll")
        assert scroll.max_scroll_x == 0, "wrapped: nothing to scroll sideways, nothing cut"
        assert exception.size.height > len(fixtures.TRACEBACK.splitlines()), "the long line takes several rows"


async def test_the_history_why_wraps_within_the_screen():
    store, key, _ = create_experiment()
    app = InspectorHost(store, key, section=Section.HISTORY)
    async with app.run_test(size=SMALL) as pilot:
        screen = await loaded(pilot)
        log = screen.query_one(HistoryLog)
        rows = [HistoryRow("2026-11-21 12:00:00", "journal", "mark-stale: running → interrupted", "bob", "because " + LONG_LINE)]
        log.set_rows(rows)
        await pilot.pause()
        why = log.columns[list(log.columns)[-1]]
        left = sum(c.get_render_width(log) for c in list(log.columns.values())[:-1])
        assert left + why.get_render_width(log) <= log.size.width
        assert log.rows[list(log.rows)[0]].height > 1, "the long why takes several rows"
