"""How far an experiment has come and how long it has taken: plain numbers from a record.

Shared by the board (the progress sort) and the widgets (bars, elapsed, ETA), so the
table and its order never disagree.
"""

from __future__ import annotations

from datetime import datetime

from state.record import ExperimentRecord
from state.verdict import StaleVerdict


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
    """Time left at the current attempt's rate (runs finished since it started), not the whole history's."""
    if record.status != "running" or not record.runs_total:
        return None
    remaining = record.runs_total - record.runs_done - record.runs_failed
    if record.attempt_runs_finished is not None and record.attempt_started_at is not None:
        finished, since = record.attempt_runs_finished, record.attempt_started_at
    else:
        finished, since = record.runs_done + record.runs_failed, record.started_at
    if not finished or since is None:
        return None
    elapsed = (now - since).total_seconds()
    if elapsed <= 0:
        return None
    return max(0.0, remaining * elapsed / finished)


def last_seen(record: ExperimentRecord) -> datetime | None:
    """The latest moment the file proves anything ran: the last heartbeat or the last write."""
    moments = [t for t in (record.heartbeat_at, record.last_updated) if t is not None]
    return max(moments) if moments else None


def experiment_end(record: ExperimentRecord, verdict: StaleVerdict | None) -> datetime | None:
    """When the experiment stopped as far as the evidence goes (None: it runs on, proven alive)."""
    if record.status == "running":
        return None if verdict is not None and verdict.is_alive else last_seen(record)
    # Ended by its own runner: when it said so. Marked stale by someone else, the mark's write is no
    # evidence that it ran: its last heartbeat is (files without heartbeats have only their last write).
    return record.finished_at or record.heartbeat_at or record.last_updated


def elapsed_seconds(record: ExperimentRecord, now: datetime, verdict: StaleVerdict | None = None) -> float | None:
    """From the start to now while proven alive, else to the last evidence of it (completion, heartbeat, last write)."""
    if not record.started_at:
        return None
    end = experiment_end(record, verdict) or now
    return max(0.0, (end - record.started_at).total_seconds())


__all__ = ["elapsed_seconds", "eta_seconds", "experiment_end", "last_seen", "progress_fraction"]
