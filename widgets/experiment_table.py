"""The experiments table: one keyed row per state file, rendered lazily."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import datetime, timedelta
from itertools import islice

from rich.text import Text
from textual.binding import Binding

from state.board import BoardRow
from state.progress import elapsed_seconds, eta_seconds, progress_fraction
from state.record import BrokenRecord, ExperimentRecord, StateFormat
from state.verdict import is_stale
from widgets import formatting as fmt
from widgets.virtual_table import Column, VirtualTable

SOURCE_COLUMN = Column("source", "source", 8, priority=1)
#: The same column where rows come from other hosts (a hub): it then names each row's host.
HOST_COLUMN = Column("source", "host", 8, priority=1, title="host (or source)")
COLUMNS = (
    Column("id", "experiment", 16, flex=True, title="experiment id"),
    Column("name", "name/model", 12, priority=5, flex=True),
    Column("status", "status", 13),
    Column("progress", "progress", 16),
    Column("runs", "runs ✓/✗/all", 13, priority=2, justify="right", title="runs done/failed/all"),
    Column("energy", "energy", 8, priority=6, justify="right"),
    Column("started", "start", 5, priority=7, title="start time"),
    Column("elapsed", "elapsed", 7, priority=3, justify="right"),
    Column("eta", "eta", 6, priority=4, justify="right", title="ETA"),
    Column("age", "upd", 6, justify="right", title="last update"),
    Column("owner", "owner", 7, priority=1),
)
#: Status words longer than the status column leaves them (its width less the symbol and a space),
#: as the table shows them; the inspector's title shows the whole word beside the shared status.
SHORT_WORDS = {"circuit_breaker": "circuit_brk"}
#: Rows measured for the flex columns' content width (the first of the order: what is on screen).
MEASURED_ROWS = 5_000
#: The most a flex column asks for, however long its longest text.
MAX_WANTED = 48
ONE_SECOND = timedelta(seconds=1)


class ExperimentTable(VirtualTable[BoardRow]):
    """Experiments with status colour, explicit stale marker, progress, runs, energy, timing."""

    BINDINGS = [Binding("enter", "select", "Inspect")]

    def __init__(
        self, *, clock: Callable[[], datetime], show_source: bool = False, hosts: bool = False, id: str | None = None
    ) -> None:
        columns = ((HOST_COLUMN if hosts else SOURCE_COLUMN), *COLUMNS) if show_source or hosts else COLUMNS
        super().__init__(
            columns, self._cells, clock_cells=self._clock_texts, clock_change=self._clock_change,
            empty_text="no experiments in this directory (yet)", id=id,
        )
        self.clock = clock
        self.show_source = show_source or hosts
        self._now = clock()

    def replace_rows(self, rows: Mapping[Hashable, BoardRow], order: Iterable[Hashable]) -> None:
        order = list(order)
        super().replace_rows(rows, order)
        self._measure((rows[k] for k in islice(order, MEASURED_ROWS) if k in rows), grow_only=False)

    def update_rows(self, rows: Mapping[Hashable, BoardRow]) -> None:
        super().update_rows(rows)
        self._measure(rows.values(), grow_only=True)

    def _measure(self, rows: Iterable[BoardRow], *, grow_only: bool) -> None:
        """Ask for the width the ids and names need, so wide terminals share space by content."""
        ids = names = 0
        for row in rows:
            entry = row.entry
            if isinstance(entry, BrokenRecord):
                ids = max(ids, len(entry.key))
            else:
                ids = max(ids, len(entry.experiment_id))
                names = max(names, len(entry.label))
        for key, need in (("id", ids), ("name", names)):
            if grow_only:
                need = max(need, self.wanted_width(key))
            self.want_width(key, min(need, MAX_WANTED))

    def render_lines(self, crop):  # one clock reading per repaint, not per row
        self._now = self.clock()
        return super().render_lines(crop)

    def refresh_if_changed(self) -> int:
        # The clock tick compares the texts of now, not those of the last repaint (an idle screen
        # had none since: its ages stood still).
        self._now = self.clock()
        return super().refresh_if_changed()

    def _clock_texts(self, row: BoardRow) -> tuple[str, ...]:
        """Start, elapsed, ETA and age: the cells that change while the row's data does not."""
        entry = row.entry
        if isinstance(entry, BrokenRecord):
            return ()
        now = self._now
        return (fmt.clock_time(now, entry.started_at), *(fmt.duration(s) for s in _clock_lengths(row, now)))

    def _clock_change(self, row: BoardRow) -> float | None:
        """Seconds until one of ``_clock_texts`` reads differently (None: not by the clock alone)."""
        entry = row.entry
        if isinstance(entry, BrokenRecord):
            return None
        now = self._now
        due = fmt.durations_change(_clock_lengths(row, now), _clock_lengths(row, now + ONE_SECOND))
        if entry.started_at is not None:
            midnight = fmt.clock_time_change(now)
            due = midnight if due is None else min(due, midnight)
        return due

    def _cells(self, row: BoardRow) -> list[str | Text]:
        cells = self._record_cells(row)
        return [row.entry.host or row.source, *cells] if self.show_source else cells

    def _record_cells(self, row: BoardRow) -> list[str | Text]:
        entry = row.entry
        colours = fmt.theme_colours(self.app.theme_variables)
        if isinstance(entry, BrokenRecord):
            return [
                entry.key,
                "",
                fmt.status_text("broken", colours=colours),
                Text(entry.reason, style=colours["$error"]),
            ]
        frac = progress_fraction(entry)
        if entry.processes_total > 1 or entry.processes:
            tail = f" {entry.processes_done}/{entry.processes_total}p"
        else:
            tail = f" {frac * 100:3.0f}%" if frac is not None else ""
        bar_width = max(4, 16 - len(tail))
        progress = Text(fmt.bar(frac, bar_width), style=colours["$accent"]) + Text(tail)
        runs = f"{entry.runs_done}/{entry.runs_failed}/{entry.runs_total}" if entry.runs_total else "–"
        owner = fmt.verdict_text(entry.status, row.verdict)
        owner_style = colours["$error"] if owner == "dead" else (colours["$success"] if owner == "alive" else "")
        started, elapsed, eta, age = self._clock_texts(row)
        return [
            entry.experiment_id,
            entry.label,
            fmt.status_text(entry.status, row.verdict, colours=colours, word=_own_word(entry)),
            progress,
            Text(runs, style=colours["$error"] if entry.runs_failed else ""),
            fmt.energy(entry.energy_joules),
            started,
            elapsed,
            eta,
            age,
            Text(owner, style=owner_style),
        ]


def _clock_lengths(row: BoardRow, now: datetime) -> tuple[float | None, float | None, float | None]:
    """Elapsed, ETA (none while stale) and age in seconds at ``now``."""
    entry = row.entry
    return (
        elapsed_seconds(entry, now, row.verdict),
        None if is_stale(entry.status, row.verdict) else eta_seconds(entry, now),
        (now - entry.last_updated).total_seconds() if entry.last_updated is not None else None,
    )


def _own_word(entry: ExperimentRecord) -> str | None:
    """A study's own status word where it differs from the shared one (``circuit_breaker`` is drawn
    failed), shortened where the column would cut it."""
    if entry.format is StateFormat.LEM_STUDY and entry.raw_status and entry.raw_status != entry.status:
        return SHORT_WORDS.get(entry.raw_status, entry.raw_status)
    return None
