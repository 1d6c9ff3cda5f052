"""An experiment's processes as table rows, with what only the inspector shows.

``state.detect.summarize`` builds the same rows for every file of a scan and
leaves out the host and the heartbeat (memory and churn across 100,000
files); one open file can afford them.
"""

from __future__ import annotations

from datetime import datetime

from state.detect import StateModel, study_process_rows
from state.lem_study import StudyManifest
from state.lem import LemExperimentState
from state.native import ExperimentDoc
from state.record import ProcessRow


def _aware(value: datetime | None) -> datetime | None:
    """Local-aware, as the table subtracts it from an aware clock; None when out of range."""
    if value is None or value.tzinfo is not None:
        return value
    try:
        return value.astimezone()
    except (OverflowError, OSError, ValueError):
        return None


def process_rows(model: StateModel) -> tuple[ProcessRow, ...]:
    """One row per process, by process index; () for formats without processes."""
    if isinstance(model, ExperimentDoc):
        return tuple(
            ProcessRow(
                index=p.process_index,
                status=p.status.value,
                gpu_id=p.gpu_id,
                pid=p.owner.pid if p.owner else None,
                runs_done=p.runs_done,
                runs_failed=p.runs_failed,
                runs_total=p.runs_total,
                current_run=p.current_run,
                current_step=p.current_step,
                started_at=_aware(p.started_at),
                completed_at=_aware(p.completed_at),
                error=p.error_message,
                host=p.owner.host if p.owner else None,
                heartbeat_at=_aware(p.heartbeat_at),
            )
            for p in sorted(model.processes.values(), key=lambda p: p.process_index)
        )
    if isinstance(model, LemExperimentState):
        return tuple(
            ProcessRow(
                index=p.process_index,
                status=p.status.value,
                gpu_id=p.gpu_id,
                started_at=_aware(p.started_at),
                completed_at=_aware(p.completed_at),
                error=p.error_message,
            )
            for _, p in sorted(model.process_progress.items())
        )
    if isinstance(model, StudyManifest):
        return study_process_rows(model)
    return ()
