"""llenergymeasure's state files, field for field.

v1 (6 states) is first-class: expwatch reads it and, when it must write (mark
stale, a transition), writes exactly what llenergymeasure's own loader accepts.
v2 (3 phases plus a ``failed`` flag) is read and can be marked stale.
Both models forbid extra fields, as llenergymeasure's do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from state.transitions import (  # noqa: F401 - the llenergymeasure status facts, re-exported
    LEM_INCOMPLETE_REASONS,
    LEM_PROCESS_STATUSES,
    ExperimentPhase,
    ExperimentStatus,
    ProcessStatus,
    lem_incomplete_reason,
)

STALE_MESSAGE = "Subprocess no longer running (stale state detected)"


class ProcessProgress(BaseModel):
    """Per-process progress of a v1 experiment."""

    process_index: int
    status: ProcessStatus = ProcessStatus.PENDING
    gpu_id: int | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error_message: str | None = None

    @field_validator("status")
    @classmethod
    def _lem_statuses_only(cls, value: ProcessStatus) -> ProcessStatus:
        if value not in LEM_PROCESS_STATUSES:
            raise ValueError("'interrupted' is not a llenergymeasure process status (pending, running, completed, failed)")
        return value


class LemExperimentState(BaseModel):
    """llenergymeasure v1 ``ExperimentState`` (6-state)."""

    model_config = ConfigDict(extra="forbid")

    experiment_id: str
    status: ExperimentStatus = ExperimentStatus.INITIALISED
    cycle_id: int = 0
    config_path: str | None = None
    config_hash: str | None = None
    model_name: str | None = None
    prompt_args: dict[str, Any] = Field(default_factory=dict)
    num_processes: int = 1
    subprocess_pid: int | None = None
    process_progress: dict[int, ProcessProgress] = Field(default_factory=dict)
    started_at: datetime | None = None
    last_updated: datetime = Field(default_factory=datetime.now)
    error_message: str | None = None
    completed_runs: dict[str, str] = Field(default_factory=dict)
    failed_runs: dict[str, str] = Field(default_factory=dict)
    total_runs: int = 0

    def to_json(self) -> str:
        """The file text, as llenergymeasure writes it (``indent=2``)."""
        return self.model_dump_json(indent=2)


class LemV2ExperimentState(BaseModel):
    """llenergymeasure v2 ``ExperimentState`` (3 phases, ``failed`` flag)."""

    model_config = ConfigDict(extra="forbid")

    experiment_id: str
    phase: ExperimentPhase = ExperimentPhase.INITIALISING
    failed: bool = False
    config_hash: str | None = None
    error_message: str | None = None
    started_at: datetime | None = None
    last_updated: datetime = Field(default_factory=datetime.now)
    subprocess_pid: int | None = None

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)
