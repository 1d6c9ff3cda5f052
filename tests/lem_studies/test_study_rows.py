"""A study's own status word in the main table, its entries' labels in the process table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.dashboard.helpers import make_app, wait_for
from tests.lem_studies.test_studies import CORPUS, EXPECT
from widgets.experiment_table import ExperimentTable
from widgets.process_table import ProcessTable


@pytest.fixture
def results(tmp_path: Path) -> Path:
    target = tmp_path / "project" / "results"
    shutil.copytree(CORPUS / "results", target, copy_function=shutil.copy)
    return target


def plain(cells) -> list[str]:
    return [c if isinstance(c, str) else c.plain for c in cells]


async def test_study_status_word_and_entry_labels_are_shown(results: Path):
    by_status = {want["status"]: key for key, want in EXPECT["studies"].items()}
    app = make_app(results)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="initial scan")
        table = app.screen_stack[0].query_one(ExperimentTable)
        status_col = [c.key for c in table.columns].index("status")
        for word, shared in (("circuit_breaker", "failed"), ("timed_out", "interrupted"), ("completed", "completed")):
            row = table.get_row(by_status[word])
            assert row.entry.status == shared
            assert plain(table._cells(row))[status_col].split(" ", 1)[1] == word  # noqa: SLF001
        processes = app.screen_stack[0].query_one(ProcessTable)
        record = table.get_row(by_status["circuit_breaker"]).entry
        processes.show(record.processes, record=record)
        step_col = [c.key for c in processes.columns].index("step")
        first = plain(processes._cells(processes.get_row(0)))  # noqa: SLF001
        assert first[step_col] == record.processes[0].label and first[step_col].endswith("(cycle 1)")
