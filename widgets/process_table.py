"""An experiment's processes: the main screen's selected experiment, and the inspector's Processes tab.

The inspector asks for ``detail``: the host and the heartbeat age, which
only one open file carries (see ``state.inspection.processes``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rich.text import Text

from state.record import ProcessRow
from widgets import formatting as fmt
from widgets.run_table import printable
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
DETAIL_COLUMNS = (
    *COLUMNS[:4],
    Column("host", "host", 10, priority=2),
    *COLUMNS[4:7],
    Column("heartbeat", "heartbeat", 9, priority=3, justify="right"),
    Column("error", "error", 12, priority=1, flex=True),
)


class ProcessTable(VirtualTable[ProcessRow]):
    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        detail: bool = False,
        focusable: bool = False,
        id: str | None = None,
    ) -> None:
        super().__init__(
            DETAIL_COLUMNS if detail else COLUMNS, self._cells, empty_text="no per-process progress recorded", id=id
        )
        self.clock = clock
        self.can_focus = focusable

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
        cells: dict[str, str | Text] = {
            "index": str(p.index),
            "status": fmt.status_text(p.status, colours=colours),
            "gpu": "–" if p.gpu_id is None else str(p.gpu_id),
            "pid": "–" if p.pid is None else str(p.pid),
            "host": printable(p.host) if p.host else "–",
            "runs": runs,
            "step": printable(step),
            "elapsed": fmt.duration(elapsed),
            "heartbeat": fmt.age(now, p.heartbeat_at),
            "error": Text(printable(p.error or ""), style=colours["$error"]),
        }
        return [cells[c.key] for c in self.columns]
