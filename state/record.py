"""The common read model: one immutable summary per state file.

The UI and the CLI work only with these. They are cheap to compare, so a
rescan can tell exactly which rows changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # the pydantic models load only where a file is validated
    from state.native import OwnerIdentity


class StateFormat(str, Enum):
    LEM_V1 = "llenergymeasure-v1"
    LEM_V2 = "llenergymeasure-v2"
    EXPWATCH = "expwatch-1"
    LEM_STUDY = "llenergymeasure-study"
    MLTRAQ = "mltraq"
    """An experiment in an MLtraq database (read-only; ``path`` is the database file)."""


class FileVersion(NamedTuple):
    """Identity of one version of a file: any write changes at least one field.

    A tuple, so the scan's per-file comparison runs at C speed and costs no more
    memory than the bare triple it replaced.
    """

    inode: int
    mtime_ns: int
    size: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileVersion:
        return cls(st.st_ino, st.st_mtime_ns, st.st_size)


@dataclass(frozen=True, slots=True)
class ProcessRow:
    index: int
    status: str
    gpu_id: int | None = None
    pid: int | None = None
    runs_done: int = 0
    runs_failed: int = 0
    runs_total: int = 0
    current_run: str | None = None
    current_step: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None
    host: str | None = None
    heartbeat_at: datetime | None = None
    label: str | None = None
    """What the process works on, where the file names it (a study entry: its config summary and cycle)."""
    energy_joules: float | None = None
    """``host`` and ``heartbeat_at`` are filled in only for one open file (the inspector), not by a scan."""


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    """What the dashboard needs to know about one readable experiment file."""

    key: str
    """The file stem: unique in the directory and always safe as a name."""
    path: Path
    format: StateFormat
    experiment_id: str
    status: str
    """One of the six ``ExperimentStatus`` values."""
    version: FileVersion
    name: str | None = None
    raw_status: str | None = None
    """The status as the file states it (the v2 phase, for example)."""
    processes: tuple[ProcessRow, ...] = ()
    processes_total: int = 0
    processes_done: int = 0
    runs_done: int = 0
    runs_failed: int = 0
    runs_total: int = 0
    owner: OwnerIdentity | None = None
    workers: tuple[OwnerIdentity, ...] = ()
    legacy_pid: int | None = None
    heartbeat_at: datetime | None = None
    heartbeat_interval_s: float | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_updated: datetime | None = None
    error_message: str | None = None
    config_hash: str | None = None
    model_name: str | None = None
    energy_joules: float | None = None
    attempt: int = 1
    attempt_started_at: datetime | None = None
    """When the current attempt began (the last move to running), where the file says."""
    attempt_runs_finished: int | None = None
    """Runs finished (completed or failed) by the current attempt; None where the format does not say."""
    log_path: str | None = None
    resumable_by_runner: bool = False
    host: str | None = None
    """The host that published it, for records read from a hub (None: read here, from a file)."""
    broken: bool = field(default=False, init=False)

    @property
    def label(self) -> str:
        return self.name or self.model_name or ""


@dataclass(frozen=True, slots=True)
class BrokenRecord:
    """A file in the state directory that could not be read as an experiment."""

    key: str
    path: Path
    reason: str
    version: FileVersion | None = None
    host: str | None = None
    broken: bool = field(default=True, init=False)

    @property
    def experiment_id(self) -> str:
        return self.key

    status = "broken"


Entry = ExperimentRecord | BrokenRecord
