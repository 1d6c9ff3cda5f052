"""Status changes applied to any of the formats, as their own tools would.

Each function returns a new model; the caller saves it through the store.
"""

from __future__ import annotations

from datetime import datetime

from state.detect import StateModel
from state.lem import STALE_MESSAGE, LemExperimentState, LemV2ExperimentState
from state.lem_study import StudyManifest, mark_interrupted, study_status
from state.native import ExperimentDoc, HistoryEntry
from state.transitions import (
    ExperimentPhase,
    ExperimentStatus,
    InvalidStateTransitionError,
    phase_to_status,
    validate_transition,
)


def current_status(model: StateModel) -> ExperimentStatus:
    if isinstance(model, LemV2ExperimentState):
        return phase_to_status(model.phase, model.failed)
    if isinstance(model, StudyManifest):
        return study_status(model)
    return model.status


def _now_like(model: StateModel) -> datetime:
    """llenergymeasure writes naive local time; expwatch writes aware local time."""
    if isinstance(model, ExperimentDoc):
        return datetime.now().astimezone()
    return datetime.now()


def apply_transition(
    model: StateModel, target: ExperimentStatus, *, who: str, why: str | None
) -> StateModel:
    """Validated ``status -> target``; ``why`` becomes the error message where one is due."""
    target = ExperimentStatus(target)
    now = _now_like(model)
    if isinstance(model, LemV2ExperimentState):
        return _apply_v2(model, target, why=why, now=now)
    validate_transition(model.status, target)
    update: dict[str, object] = {"status": target, "last_updated": now}
    if target in (ExperimentStatus.INTERRUPTED, ExperimentStatus.FAILED):
        update["error_message"] = why
    elif target is ExperimentStatus.RUNNING:
        update["error_message"] = None
    if isinstance(model, ExperimentDoc):
        update["revision"] = model.revision + 1
        update["history"] = [
            *model.history,
            HistoryEntry(at=now, from_status=model.status, to=target, who=who, why=why),
        ]
        if target is ExperimentStatus.RUNNING and model.status in (
            ExperimentStatus.INTERRUPTED,
            ExperimentStatus.FAILED,
        ):
            update["attempt"] = model.attempt + 1
            update["finished_at"] = None
    return model.model_copy(update=update)


def _apply_v2(
    model: LemV2ExperimentState, target: ExperimentStatus, *, why: str | None, now: datetime
) -> LemV2ExperimentState:
    current = phase_to_status(model.phase, model.failed)
    if target in (ExperimentStatus.FAILED, ExperimentStatus.INTERRUPTED):
        if model.failed or model.phase is ExperimentPhase.DONE:
            raise InvalidStateTransitionError(current, target)
        return model.model_copy(update={"failed": True, "error_message": why, "last_updated": now})
    raise InvalidStateTransitionError(current, target)


def mark_stale(model: StateModel, *, who: str) -> StateModel:
    """llenergymeasure's stale rule: running -> interrupted (v2: failed) with its message.

    A study gets what its own ``mark_interrupted()`` writes (no message: the manifest has no field for one).
    """
    if isinstance(model, StudyManifest):
        if model.status != "running":
            raise InvalidStateTransitionError(study_status(model), ExperimentStatus.INTERRUPTED)
        return mark_interrupted(model)
    return apply_transition(model, ExperimentStatus.INTERRUPTED, who=who, why=STALE_MESSAGE)


def is_llenergymeasure(model: StateModel) -> bool:
    return isinstance(model, (LemExperimentState, LemV2ExperimentState, StudyManifest))
