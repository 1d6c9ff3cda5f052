"""An experiment's processes: the main screen's selected experiment, and the inspector's Processes tab.

A row is never drawn more alive than the evidence: "running" needs a live
verdict on the process (``state.process_state``), and its elapsed time stops
where the evidence of it stops. The inspector asks for ``detail``: the host and
the heartbeat age, which only one open file carries (see ``state.inspection.processes``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from rich.text import Text

from state.process_state import process_elapsed, shown_process_status
from state.record import ExperimentRecord, ProcessRow
from state.text import printable
from state.verdict import StaleVerdict
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
#: The most the step and error columns ask for, however long their text.
MAX_WANTED = 60
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
            DETAIL_COLUMNS if detail else COLUMNS, self._cells, clock_cells=self._clock_texts,
            clock_change=self._clock_change, empty_text="no per-process progress recorded", id=id,
        )
        self.clock = clock
        self.can_focus = focusable
        self.record: ExperimentRecord | None = None
        self.verdict: StaleVerdict | None = None

    def show(
        self,
        processes: tuple[ProcessRow, ...],
        *,
        record: ExperimentRecord | None = None,
        verdict: StaleVerdict | None = None,
    ) -> None:
        """The rows of ``record``'s processes, judged with ``verdict`` (the experiment's owner verdict)."""
        context_changed = (record, verdict) != (self.record, self.verdict)
        self.record, self.verdict = record, verdict
        rows = {p.index: p for p in processes}
        # Wide terminals give the step and the error the room their text needs.
        self.want_width("step", min(MAX_WANTED, max((len(p.current_run or "") + len(p.current_step or "") + 6 for p in processes), default=0)))
        self.want_width("error", min(MAX_WANTED, max((len(p.error or "") for p in processes), default=0)))
        if list(rows) == self.keys:
            self.update_rows(rows)
            if context_changed:
                self.refresh()
        else:
            self.replace_rows(rows, sorted(rows))

    def _shown_status(self, p: ProcessRow) -> str:
        record = self.record
        return p.status if record is None else shown_process_status(p, experiment_status=record.status, verdict=self.verdict)

    def _clock_lengths(self, p: ProcessRow, now: datetime) -> tuple[float | None, float | None]:
        """Elapsed and the heartbeat's age, in seconds at ``now``."""
        record = self.record
        if record is None:
            elapsed = ((p.completed_at or now) - p.started_at).total_seconds() if p.started_at else None
        else:
            elapsed = process_elapsed(p, self._shown_status(p), record, now)
        return elapsed, (now - p.heartbeat_at).total_seconds() if p.heartbeat_at is not None else None

    def _clock_texts(self, p: ProcessRow) -> tuple[str, ...]:
        """The cells that change while the row's data does not."""
        return tuple(fmt.duration(s) for s in self._clock_lengths(p, self.clock()))

    def _clock_change(self, p: ProcessRow) -> float | None:
        now = self.clock()
        return fmt.durations_change(self._clock_lengths(p, now), self._clock_lengths(p, now + timedelta(seconds=1)))

    def _cells(self, p: ProcessRow) -> list[str | Text]:
        now = self.clock()
        colours = fmt.theme_colours(self.app.theme_variables)
        shown = self._shown_status(p)
        elapsed, heartbeat = self._clock_lengths(p, now)
        runs = f"{p.runs_done}/{p.runs_failed}/{p.runs_total}" if p.runs_total else "–"
        step = p.current_step or ""
        if p.current_run and shown == "running":
            step = f"{p.current_run}:{step}" if step else p.current_run
        elif step and shown in ("dead", "unknown", "stopped"):
            step = f"last: {step}"
        step = step or p.label or ""
        cells: dict[str, str | Text] = {
            "index": str(p.index),
            "status": fmt.status_text(shown, colours=colours),
            "gpu": "–" if p.gpu_id is None else str(p.gpu_id),
            "pid": "–" if p.pid is None else str(p.pid),
            "host": printable(p.host) if p.host else "–",
            "runs": runs,
            "step": printable(step),
            "elapsed": fmt.duration(elapsed),
            "heartbeat": fmt.duration(heartbeat),
            "error": Text(printable(p.error or ""), style=colours["$error"]),
        }
        return [cells[c.key] for c in self.columns]
