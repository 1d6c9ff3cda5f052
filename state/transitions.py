"""The 6-state experiment lifecycle shared by llenergymeasure v1 and expwatch."""

from __future__ import annotations

from enum import Enum


class ExperimentStatus(str, Enum):
    """Status of an experiment (llenergymeasure v1 values, also used by expwatch)."""

    INITIALISED = "initialised"
    RUNNING = "running"
    COMPLETED = "completed"
    AGGREGATED = "aggregated"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class ProcessStatus(str, Enum):
    """Status of one worker process of an experiment."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    """Stopped on request (Ctrl-C, SIGTERM) at a run boundary: expwatch's own format only."""


S = ExperimentStatus
VALID_TRANSITIONS: dict[ExperimentStatus, frozenset[ExperimentStatus]] = {
    S.INITIALISED: frozenset({S.RUNNING, S.FAILED, S.INTERRUPTED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.INTERRUPTED}),
    S.COMPLETED: frozenset({S.AGGREGATED, S.FAILED}),
    S.AGGREGATED: frozenset(),
    S.FAILED: frozenset({S.RUNNING}),
    S.INTERRUPTED: frozenset({S.RUNNING}),
}
TERMINAL = frozenset(s for s, targets in VALID_TRANSITIONS.items() if not targets)
#: States from which an experiment can be resumed (or retried).
RESUMABLE = frozenset({S.INTERRUPTED, S.FAILED})
#: States in which the experiment claims a live owner process.
ACTIVE = frozenset({S.RUNNING})


class InvalidStateTransitionError(ValueError):
    """A transition the lifecycle table forbids."""

    def __init__(self, from_state: ExperimentStatus | str, to_state: ExperimentStatus | str):
        self.from_state = ExperimentStatus(from_state)
        self.to_state = ExperimentStatus(to_state)
        allowed = ", ".join(sorted(s.value for s in VALID_TRANSITIONS[self.from_state])) or "none"
        super().__init__(
            f"cannot go from {self.from_state.value} to {self.to_state.value} "
            f"(allowed from {self.from_state.value}: {allowed})"
        )


def can_transition_to(current: ExperimentStatus | str, target: ExperimentStatus | str) -> bool:
    """Whether the lifecycle allows ``current -> target``."""
    return ExperimentStatus(target) in VALID_TRANSITIONS[ExperimentStatus(current)]


def validate_transition(current: ExperimentStatus | str, target: ExperimentStatus | str) -> None:
    """Raise ``InvalidStateTransitionError`` unless ``current -> target`` is allowed."""
    if not can_transition_to(current, target):
        raise InvalidStateTransitionError(current, target)


class ExperimentPhase(str, Enum):
    """llenergymeasure v2's 3-phase lifecycle (failure is a separate flag)."""

    INITIALISING = "initialising"
    MEASURING = "measuring"
    DONE = "done"


_PHASE_TO_STATUS = {
    ExperimentPhase.INITIALISING: S.INITIALISED,
    ExperimentPhase.MEASURING: S.RUNNING,
    ExperimentPhase.DONE: S.COMPLETED,
}


def phase_to_status(phase: ExperimentPhase | str, failed: bool) -> ExperimentStatus:
    """Show a v2 (phase, failed) pair as one of the six statuses."""
    if failed:
        return S.FAILED
    return _PHASE_TO_STATUS[ExperimentPhase(phase)]


#: The process statuses llenergymeasure's own loader accepts (expwatch's runner adds ``interrupted``).
LEM_PROCESS_STATUSES = tuple(s for s in ProcessStatus if s is not ProcessStatus.INTERRUPTED)


#: llenergymeasure's ``find_incomplete()``: every experiment not aggregated, each status its own reason.
LEM_INCOMPLETE_REASONS = {
    ExperimentStatus.INITIALISED: "initialised, never started",
    ExperimentStatus.RUNNING: "running, not finished",
    ExperimentStatus.COMPLETED: "completed, results not aggregated",
    ExperimentStatus.FAILED: "failed",
    ExperimentStatus.INTERRUPTED: "interrupted",
}


def lem_incomplete_reason(status: str) -> str | None:
    """Why llenergymeasure would list a 6-state experiment as incomplete; None when aggregated (or unknown).

    A ``str`` enum's members hash and compare as their values: the text finds its reason with no
    ``ExperimentStatus(status)`` built (2 % of a cold ``list --json``)."""
    return LEM_INCOMPLETE_REASONS.get(status)
