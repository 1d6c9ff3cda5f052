"""Snapshots of each inspector section at 100x30 (frozen clock, relative paths, no blinking cursor)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from app.screens.inspector import Section
from tests.inspector import fixtures
from tests.inspector.fixtures import STUDY_NAME, STUDY_SOURCE, create_broken, create_experiment, create_lem
from tests.inspector.harness import ALIVE, InspectorHost, loaded, wait_for
from widgets.run_table import RunTable
from widgets.step_source import StepSource

SIZE = (100, 30)


def _host(section: Section, *, kind: str = "doc") -> InspectorHost:
    store, key, _ = create_experiment()
    if kind == "lem":
        key = create_lem(store)
    elif kind == "broken":
        key = create_broken(store)
    return InspectorHost(store, key, section=section, verdict_provider=lambda record: ALIVE)


async def _settled(pilot) -> None:
    screen = await loaded(pilot)
    for field in screen.query(Input):
        field.cursor_blink = False
    await wait_for(pilot, lambda: all(p.is_mounted for p in screen.query(StepSource)), what="step panels")
    await pilot.pause()


def test_overview(snap_compare):
    assert snap_compare(_host(Section.OVERVIEW), terminal_size=SIZE, run_before=_settled)


def test_processes(snap_compare):
    assert snap_compare(_host(Section.PROCESSES), terminal_size=SIZE, run_before=_settled)


def test_runs_filtered(snap_compare):
    async def run_before(pilot) -> None:
        await _settled(pilot)
        await pilot.press("slash", *"bf16")
        await pilot.press("enter")

    assert snap_compare(_host(Section.RUNS), terminal_size=SIZE, run_before=run_before)


async def _open_failed_run(pilot) -> None:
    await _settled(pilot)
    screen = pilot.app.screen
    screen.query_one(RunTable).move_cursor_to_key("r-0004")
    screen.query_one(RunTable).focus()
    await pilot.press("enter")
    await pilot.pause()


def test_run_detail_with_traceback(snap_compare):
    assert snap_compare(_host(Section.RUNS), terminal_size=SIZE, run_before=_open_failed_run)


def test_steps_with_a_changed_file(snap_compare):
    """measure is running and its function was edited on disk after the run started."""
    host = _host(Section.STEPS)
    study = Path(STUDY_NAME)
    study.write_text(STUDY_SOURCE.replace("12.5 * params", "13.0 * params"), encoding="utf-8")

    async def run_before(pilot) -> None:
        await _settled(pilot)
        pilot.app.screen.query_one("#step-list").scroll_end(animate=False)
        await pilot.pause()

    assert snap_compare(host, terminal_size=SIZE, run_before=run_before)


def test_history(snap_compare):
    assert snap_compare(_host(Section.HISTORY), terminal_size=SIZE, run_before=_settled)


def test_raw_search(snap_compare):
    async def run_before(pilot) -> None:
        await _settled(pilot)
        await pilot.press("slash", *"memoryerror")

    assert snap_compare(_host(Section.RAW), terminal_size=SIZE, run_before=run_before)


def test_llenergymeasure_overview(snap_compare):
    assert snap_compare(_host(Section.OVERVIEW, kind="lem"), terminal_size=SIZE, run_before=_settled)


def test_broken_file(snap_compare):
    assert snap_compare(_host(Section.OVERVIEW, kind="broken"), terminal_size=SIZE, run_before=_settled)


def test_run_tab_with_a_long_traceback_80x24(snap_compare, monkeypatch):
    """Long traceback lines wrap (the fields stack above them at 80 columns); nothing is cut."""
    long = fixtures.TRACEBACK.replace(
        'raise MemoryError("CUDA out of memory")',
        'raise MemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 1; 79.35 GiB total capacity; '
        '77.10 GiB already allocated; 1.20 GiB free; 77.90 GiB reserved in total by PyTorch)")',
    )
    monkeypatch.setattr(fixtures, "TRACEBACK", long)
    assert snap_compare(_host(Section.RUNS), terminal_size=(80, 24), run_before=_open_failed_run)
