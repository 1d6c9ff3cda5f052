"""A study's own status word in the main table, its entries' labels in the process table."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import get_args

import pytest
from textual.widgets import Static

from state.lem_study import StudyStatus
from tests.dashboard.helpers import make_app, wait_for
from tests.lem_studies.test_studies import CORPUS, EXPECT
from widgets.experiment_table import COLUMNS, SHORT_WORDS, ExperimentTable
from widgets.formatting import STATUS_LOOK, status_text
from widgets.process_table import ProcessTable


@pytest.fixture
def results(tmp_path: Path) -> Path:
    target = tmp_path / "project" / "results"
    shutil.copytree(CORPUS / "results", target, copy_function=shutil.copy)
    return target


def plain(cells) -> list[str]:
    return [c if isinstance(c, str) else c.plain for c in cells]


def _title(screen) -> str:
    """The inspector's title line ('' before it is composed)."""
    return "".join(str(title.render()) for title in screen.query("#inspector-title").results(Static))


def test_every_status_word_fits_the_status_column():
    """llenergymeasure 0.7.0's study words and every shared status: none is cut by the column."""
    width = next(c.width for c in COLUMNS if c.key == "status")
    for word in {*get_args(StudyStatus), *STATUS_LOOK}:
        cell = status_text("failed", word=SHORT_WORDS.get(word, word)).plain
        assert len(cell) <= width, f"{cell!r} is cut at {width} cells"


async def test_study_status_word_and_entry_labels_are_shown(results: Path):
    by_status = {want["status"]: key for key, want in EXPECT["studies"].items()}
    app = make_app(results)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="initial scan")
        table = app.screen_stack[0].query_one(ExperimentTable)
        status_col = [c.key for c in table.columns].index("status")
        width = table.columns[status_col].width
        shown = {"circuit_breaker": "circuit_brk", "timed_out": "timed_out", "completed": "completed"}
        for word, shared in (("circuit_breaker", "failed"), ("timed_out", "interrupted"), ("completed", "completed")):
            row = table.get_row(by_status[word])
            assert row.entry.status == shared
            cell = plain(table._cells(row))[status_col]  # noqa: SLF001
            assert cell.split(" ", 1)[1] == shown[word] and len(cell) <= width, "the whole word fits its column"
        app.inspect(by_status["circuit_breaker"])
        await wait_for(pilot, lambda: "(circuit_breaker)" in _title(app.screen), what="the whole word in the inspector")
        app.pop_screen()
        processes = app.screen_stack[0].query_one(ProcessTable)
        record = table.get_row(by_status["circuit_breaker"]).entry
        processes.show(record.processes, record=record)
        step_col = [c.key for c in processes.columns].index("step")
        first = plain(processes._cells(processes.get_row(0)))  # noqa: SLF001
        assert first[step_col] == record.processes[0].label and first[step_col].endswith("(cycle 1)")
