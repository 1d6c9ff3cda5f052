"""The selected experiment's processes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rich.text import Text

from state.record import ProcessRow
from widgets import formatting as fmt
from widgets.virtual_table import Column, VirtualTable

COLUMNS = (
    Column("index", "#", 3, justify="right"),
    Column("status", "status", 11),
    Column("gpu", "gpu", 3, priority=2, justify="right"),
    Column("pid", "pid", 7, priority=1, justify="right"),
    Column("runs", "runs", 11, justify="right"),
    Column("step", "step", 14, flex=True),
    Column("elapsed", "elapsed", 7, priority=3, justify="right"),
    Column("error", "error", 16, priority=1, flex=True),
)


class ProcessTable(VirtualTable[ProcessRow]):
    def __init__(self, *, clock: Callable[[], datetime], id: str | None = None) -> None:
        super().__init__(COLUMNS, self._cells, empty_text="no per-process progress recorded", id=id)
        self.clock = clock
        self.can_focus = False

    def show(self, processes: tuple[ProcessRow, ...]) -> None:
        rows = {p.index: p for p in processes}
        if list(rows) == self.keys:
            self.update_rows(rows)
        else:
            self.replace_rows(rows, sorted(rows))

    def _cells(self, p: ProcessRow) -> list[str | Text]:
        now = self.clock()
        colours = fmt.theme_colours(self.app.theme_variables)
        end = p.completed_at or now
        elapsed = (end - p.started_at).total_seconds() if p.started_at else None
        runs = f"{p.runs_done}/{p.runs_failed}/{p.runs_total}" if p.runs_total else "–"
        step = p.current_step or ""
        if p.current_run and p.status == "running":
            step = f"{p.current_run}:{step}" if step else p.current_run
        return [
            str(p.index),
            fmt.status_text(p.status, colours=colours),
            "–" if p.gpu_id is None else str(p.gpu_id),
            "–" if p.pid is None else str(p.pid),
            runs,
            step,
            fmt.duration(elapsed),
            Text(p.error or "", style=colours["$error"]),
        ]
