"""What a process row may claim: its recorded status, capped by the evidence.

A worker's own status in a file says "running" until somebody writes otherwise,
and nobody does when the worker is SIGKILLed. So a process shown as running
needs a live verdict on it (its own PID's, else its owner's); without one it is
"dead" or "unknown", and a process of an experiment that has ended is "stopped".
Its elapsed time ends where the evidence of it ends.
"""

from __future__ import annotations

from datetime import datetime

from state.progress import experiment_end, last_seen
from state.record import ExperimentRecord, ProcessRow
from state.verdict import Liveness, StaleVerdict

#: The states a process row is drawn in; the recorded ones plus what the evidence adds.
PROCESS_STATES = ("running", "dead", "unknown", "stopped", "pending", "completed", "failed", "interrupted")

_BY_LIVENESS = {Liveness.ALIVE: "running", Liveness.DEAD: "dead", Liveness.UNKNOWN: "unknown"}


def shown_running(experiment_status: str, liveness: Liveness | None) -> str:
    """What something its file calls running (a process, a run) is shown as: ``running`` only with
    a live verdict, ``stopped`` once its experiment ended without it recording its own end."""
    if experiment_status != "running":
        return "stopped"
    if liveness is None:
        return "unknown"
    return _BY_LIVENESS[liveness]


def shown_process_status(row: ProcessRow, *, experiment_status: str, verdict: StaleVerdict | None) -> str:
    """``running`` only with a live verdict on the process; what the file says otherwise."""
    if row.status != "running":
        return row.status
    return shown_running(experiment_status, verdict.liveness_of(row.pid) if verdict is not None else None)


def process_end(row: ProcessRow, shown: str, record: ExperimentRecord) -> datetime | None:
    """When the process stopped, as far as the evidence goes (None: it is still running)."""
    if shown == "running":
        return None
    own = row.completed_at or row.heartbeat_at
    if own is not None:
        return own
    return last_seen(record) if record.status == "running" else experiment_end(record, None)


def process_elapsed(row: ProcessRow, shown: str, record: ExperimentRecord, now: datetime) -> float | None:
    if row.started_at is None:
        return None
    end = process_end(row, shown, record) or now
    return max(0.0, (end - row.started_at).total_seconds())


__all__ = ["PROCESS_STATES", "process_elapsed", "process_end", "shown_process_status", "shown_running"]
