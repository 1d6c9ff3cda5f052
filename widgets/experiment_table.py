"""The experiments table: one keyed row per state file, rendered lazily."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual.binding import Binding

from state.record import BrokenRecord, Entry, ExperimentRecord
from state.verdict import StaleVerdict
from widgets import formatting as fmt
from widgets.virtual_table import Column, VirtualTable

COLUMNS = (
    Column("id", "experiment", 16, flex=True),
    Column("name", "name/model", 12, priority=5),
    Column("status", "status", 13),
    Column("progress", "progress", 16),
    Column("runs", "runs ok/✗/all", 13, priority=2, justify="right"),
    Column("energy", "energy", 8, priority=6, justify="right"),
    Column("started", "start", 5, priority=7),
    Column("elapsed", "elapsed", 7, priority=3, justify="right"),
    Column("eta", "eta", 6, priority=4, justify="right"),
    Column("age", "upd", 6, justify="right"),
    Column("owner", "owner", 7, priority=1),
)

SORTS = ("status", "updated", "id", "progress")
_STATUS_ORDER = {"running": 0, "broken": 1, "interrupted": 2, "failed": 3, "initialised": 4, "completed": 5, "aggregated": 6}


@dataclass(frozen=True, slots=True)
class ExperimentRow:
    entry: Entry
    verdict: StaleVerdict | None = None


def progress_fraction(record: ExperimentRecord) -> float | None:
    if record.runs_total:
        return (record.runs_done + record.runs_failed) / record.runs_total
    if record.processes_total and record.processes:
        return record.processes_done / record.processes_total
    if record.status in ("completed", "aggregated"):
        return 1.0
    return None


def eta_seconds(record: ExperimentRecord, now: datetime) -> float | None:
    if record.status != "running" or not record.started_at or not record.runs_total:
        return None
    done = record.runs_done + record.runs_failed
    if done == 0:
        return None
    elapsed = (now - record.started_at).total_seconds()
    return elapsed / done * (record.runs_total - done)


def elapsed_seconds(record: ExperimentRecord, now: datetime) -> float | None:
    if not record.started_at:
        return None
    end = record.finished_at if record.status != "running" and record.finished_at else None
    if end is None and record.status != "running":
        end = record.last_updated
    return ((end or now) - record.started_at).total_seconds()


def sort_key(mode: str, now: datetime) -> Callable[[ExperimentRow], tuple]:
    def key(row: ExperimentRow) -> tuple:
        entry = row.entry
        if isinstance(entry, BrokenRecord):
            return {"status": (1, entry.key), "updated": (1, 0.0, entry.key), "id": (entry.key,), "progress": (2, 0.0, entry.key)}[mode]
        stale = fmt.is_stale(entry.status, row.verdict)
        if mode == "status":
            return (-1 if stale else _STATUS_ORDER.get(entry.status, 9), entry.experiment_id)
        if mode == "updated":
            ts = entry.last_updated.timestamp() if entry.last_updated else 0.0
            return (0, -ts, entry.experiment_id)
        if mode == "progress":
            frac = progress_fraction(entry)
            return (0 if frac is not None else 1, frac or 0.0, entry.experiment_id)
        return (entry.experiment_id,)

    return key


class ExperimentTable(VirtualTable[ExperimentRow]):
    """Experiments with status colour, explicit stale marker, progress, runs, energy, timing."""

    BINDINGS = [Binding("enter", "select", "Inspect")]

    def __init__(self, *, clock: Callable[[], datetime], id: str | None = None) -> None:
        super().__init__(COLUMNS, self._cells, empty_text="no experiments in this directory (yet)", id=id)
        self.clock = clock
        self._now = clock()

    def render_lines(self, crop):  # one clock reading per repaint, not per row
        self._now = self.clock()
        return super().render_lines(crop)

    def _cells(self, row: ExperimentRow) -> list[str | Text]:
        entry = row.entry
        colours = fmt.theme_colours(self.app.theme_variables)
        if isinstance(entry, BrokenRecord):
            return [
                entry.key,
                "",
                fmt.status_text("broken", colours=colours),
                Text(entry.reason, style=colours["$error"]),
            ]
        now = self._now
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
        return [
            entry.experiment_id,
            entry.label,
            fmt.status_text(entry.status, row.verdict, colours=colours),
            progress,
            Text(runs, style=colours["$error"] if entry.runs_failed else ""),
            fmt.energy(entry.energy_joules),
            fmt.clock_time(now, entry.started_at),
            fmt.duration(elapsed_seconds(entry, now)),
            "–" if fmt.is_stale(entry.status, row.verdict) else fmt.duration(eta_seconds(entry, now)),
            fmt.age(now, entry.last_updated),
            Text(owner, style=owner_style),
        ]
