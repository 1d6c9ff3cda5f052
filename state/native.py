"""expwatch's own experiment format, written by the runner (runtime/).

Versioned through the top-level ``schema`` field. ``migrate`` lifts older
documents to the current schema before validation; unknown schemas are refused
(the file is shown as broken, never rewritten).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from state.devices import DeviceState
from state.timestamps import Timestamp
from state.transitions import ExperimentStatus, ProcessStatus

SCHEMA_PREFIX = "expwatch.experiment/"
SCHEMA_VERSION = 1
SCHEMA = f"{SCHEMA_PREFIX}{SCHEMA_VERSION}"
INDENT_RUNS_UP_TO = 1_000
"""Files of experiments with more runs are written as compact JSON."""


class RunStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class OwnerIdentity(_Model):
    """Who owns (or owned) an experiment: enough to tell a live owner from a reused PID."""

    host: str
    boot_id: str | None = None
    pid: int
    start_time: float | None = None
    """psutil ``create_time()`` of the process (seconds since the epoch)."""
    start_ticks: int | None = None
    """Field 22 of ``/proc/<pid>/stat``: start time in clock ticks since boot."""
    role: str = "coordinator"
    process_index: int | None = None


class ExceptionInfo(_Model):
    type: str
    message: str
    traceback: str = ""


class StepInfo(_Model):
    """A step function as it was when the experiment started."""

    name: str
    qualname: str
    file: str | None = None
    line: int | None = None
    source: str | None = None
    source_hash: str | None = None


class RunRecord(_Model):
    """One run of the experiment (one point of the parameter grid)."""

    id_run: str
    index: int
    params: dict[str, Any] = Field(default_factory=dict)
    fields: dict[str, Any] = Field(default_factory=dict)
    state: dict[str, Any] = Field(default_factory=dict)
    status: RunStatus = RunStatus.PENDING
    exception: ExceptionInfo | None = None
    process_index: int | None = None
    current_step: str | None = None
    attempt: int = 0
    started_at: Timestamp | None = None
    completed_at: Timestamp | None = None


class ProcessInfo(_Model):
    """One worker process of the experiment."""

    process_index: int
    status: ProcessStatus = ProcessStatus.PENDING
    gpu_id: int | None = None
    owner: OwnerIdentity | None = None
    runs_total: int = 0
    runs_done: int = 0
    runs_failed: int = 0
    current_run: str | None = None
    current_step: str | None = None
    started_at: Timestamp | None = None
    completed_at: Timestamp | None = None
    heartbeat_at: Timestamp | None = None
    error_message: str | None = None


class ResumeSpec(_Model):
    """How to relaunch the experiment: argv run in cwd."""

    argv: list[str]
    cwd: str
    env: dict[str, str] = Field(default_factory=dict)


class EnergyInfo(_Model):
    """GPU energy counters (millijoules) per GPU: ``latest_mj - start_mj`` is what it used.

    A resumed experiment's runner moves each start back by what earlier attempts used,
    so that the time between attempts is not counted (``runtime.runner.energy``)."""

    gpu_ids: list[int] = Field(default_factory=list)
    start_mj: dict[str, int] = Field(default_factory=dict)
    latest_mj: dict[str, int] = Field(default_factory=dict)
    simulated: bool = False
    updated_at: Timestamp | None = None

    @property
    def used_joules(self) -> float | None:
        deltas = [
            self.latest_mj[k] - v for k, v in self.start_mj.items() if k in self.latest_mj
        ]
        if not deltas:
            return None
        return sum(max(0, d) for d in deltas) / 1000.0


class HistoryEntry(_Model):
    """One transition of the experiment's status."""

    at: Timestamp
    from_status: ExperimentStatus | None = Field(default=None, alias="from")
    to: ExperimentStatus
    who: str
    why: str | None = None


class ExperimentDoc(_Model):
    """An experiment as expwatch's runner records it."""

    schema_: str = Field(default=SCHEMA, alias="schema")
    experiment_id: str
    name: str | None = None
    revision: int = 0
    status: ExperimentStatus = ExperimentStatus.INITIALISED
    attempt: int = 1
    study_path: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    config_hash: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    num_processes: int = 1
    owner: OwnerIdentity | None = None
    heartbeat_at: Timestamp | None = None
    heartbeat_interval_s: float = 2.0
    processes: dict[str, ProcessInfo] = Field(default_factory=dict)
    runs: list[RunRecord] = Field(default_factory=list)
    steps: list[StepInfo] = Field(default_factory=list)
    resume: ResumeSpec | None = None
    log_path: str | None = None
    energy: EnergyInfo | None = None
    devices: list[DeviceState] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)
    created_at: Timestamp | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    last_updated: Timestamp
    error_message: str | None = None

    def to_json(self) -> str:
        """The file text: indented for people to read, compact once the runs are many.

        Indentation is a third of a large file (43.6 MiB against 28.3 MiB for
        100,000 runs), and a bigger file costs every write and every reader.
        """
        indent = 2 if len(self.runs) <= INDENT_RUNS_UP_TO else None
        return self.model_dump_json(indent=indent, by_alias=True)

    def owners(self) -> list[OwnerIdentity]:
        """The coordinator and every worker with a recorded identity."""
        found = [self.owner] if self.owner else []
        found += [p.owner for p in self.processes.values() if p.owner is not None]
        return found


class UnknownSchemaError(ValueError):
    pass


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Lift a raw document to the current schema, or raise ``UnknownSchemaError``.

    Version 1 is the first; later versions add their steps here (each a pure
    function from version N to N+1), so old files stay readable.
    """
    schema = data.get("schema")
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_PREFIX):
        raise UnknownSchemaError(f"unknown schema {schema!r}")
    try:
        version = int(schema[len(SCHEMA_PREFIX):])
    except ValueError:
        raise UnknownSchemaError(f"unknown schema {schema!r}") from None
    if version > SCHEMA_VERSION:
        raise UnknownSchemaError(
            f"schema {schema!r} is newer than this expwatch understands ({SCHEMA})"
        )
    if version < 1:
        raise UnknownSchemaError(f"unknown schema {schema!r}")
    return data
