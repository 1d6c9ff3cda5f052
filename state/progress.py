"""How far an experiment has come and how long it has taken: plain numbers from a record.

Shared by the board (the progress sort) and the widgets (bars, elapsed, ETA), so the
table and its order never disagree.
"""

from __future__ import annotations

from datetime import datetime

from state.record import ExperimentRecord


def progress_fraction(record: ExperimentRecord) -> float | None:
    """Done share of the runs, else of the processes; None where nothing says."""
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


__all__ = ["elapsed_seconds", "eta_seconds", "progress_fraction"]
