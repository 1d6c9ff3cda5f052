"""llenergymeasure 0.7.0 study manifests (``<results>/<study>_<timestamp>/manifest.json``), field for field.

The published llenergymeasure writes no ``.state/`` files: each ``llem run``
rewrites one manifest per study after every transition. The models mirror
its ``StudyManifest`` and ``ExperimentManifestEntry`` exactly (same fields,
same order, extra fields forbidden), so ``to_json`` gives the bytes its own
``ManifestWriter`` would write for the same content: ``indent=2``, no
trailing newline, UTC times with a ``Z``.

A study is one row: its entries are its processes, its ``failed-runs``
tracebacks its exceptions. The study statuses map onto the six expwatch
statuses for colour and counts (``circuit_breaker`` is a failure,
``timed_out`` a stop); the row keeps the study's own word as ``raw_status``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from state.transitions import ExperimentStatus

#: Where ``llem run`` keeps the copy of the study's config that a resume runs again.
STUDY_CONFIG = "_study-artefacts/study_config.yaml"

StudyStatus = Literal["running", "completed", "interrupted", "failed", "circuit_breaker", "timed_out"]
EntryStatus = Literal["pending", "running", "completed", "failed", "skipped", "interrupted"]

S = ExperimentStatus
STUDY_TO_STATUS: dict[str, ExperimentStatus] = {
    "running": S.RUNNING,
    "completed": S.COMPLETED,
    "interrupted": S.INTERRUPTED,
    "failed": S.FAILED,
    "circuit_breaker": S.FAILED,
    "timed_out": S.INTERRUPTED,
}
#: llenergymeasure's ``_RESUMABLE_STATUSES``: what ``llem run --resume`` picks up.
RESUMABLE_STUDY_STATUSES = frozenset({"interrupted", "failed", "circuit_breaker", "timed_out"})


class StudyEntry(BaseModel):
    """One ``(config_hash, cycle)`` of a study: llenergymeasure's ``ExperimentManifestEntry``."""

    model_config = ConfigDict(extra="forbid")

    config_hash: str
    config_summary: str
    cycle: int
    status: EntryStatus
    resolved_config_hash: str | None = None
    result_file: str | None = None
    log_file: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    elapsed_seconds: float | None = None
    inference_seconds: float | None = None
    energy_joules: float | None = None
    adj_energy_joules: float | None = None
    throughput_tok_s: float | None = None
    energy_per_token_mj: float | None = None


class StudyManifest(BaseModel):
    """A study's checkpoint: llenergymeasure's ``StudyManifest`` (schema 2.0)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: str = "2.0"
    study_name: str
    study_design_hash: str
    llenergymeasure_version: str
    started_at: datetime
    completed_at: datetime | None = None
    status: StudyStatus = "running"
    total_experiments: int
    completed: int = 0
    failed: int = 0
    pending: int
    skipped: int = 0
    interrupted: int = 0
    experiments: list[StudyEntry]

    @property
    def experiment_id(self) -> str:
        """The study's name (the row's id is its folder's name, which the file does not hold)."""
        return self.study_name

    def to_json(self) -> str:
        """The file text, as ``ManifestWriter._write`` writes it."""
        return self.model_dump_json(indent=2)


def recount(entries: list[StudyEntry]) -> dict[str, int]:
    """The counts as llenergymeasure's ``ManifestWriter._recount`` derives them from the entries."""
    statuses = [e.status for e in entries]
    return {
        "completed": statuses.count("completed"),
        "failed": statuses.count("failed"),
        "pending": statuses.count("pending") + statuses.count("running"),
        "skipped": statuses.count("skipped"),
        "interrupted": statuses.count("interrupted"),
    }


def contradiction(model: StudyManifest) -> str | None:
    """Why the manifest's counts disagree with its entries, or None.

    ``prepare_resume_manifest`` writes ``interrupted: 0`` with no interrupted
    entry left, so every count is checked against the same recount.
    """
    if model.total_experiments != len(model.experiments):
        return f"total_experiments is {model.total_experiments} but the manifest lists {len(model.experiments)} entries"
    for name, counted in recount(model.experiments).items():
        stated = getattr(model, name)
        if stated != counted:
            return f"counts contradict the entries: {name} is {stated}, the entries give {counted}"
    return None


def log_file_reason(log_file: str) -> str | None:
    """Why a ``log_file`` may not be read (absolute, or leaving the study folder), or None."""
    if not log_file or "\0" in log_file or "\\" in log_file:
        return f"log_file {log_file!r} is not a relative path"
    path = PurePosixPath(log_file)
    if path.is_absolute() or ".." in path.parts:
        return f"log_file {log_file!r} points outside the study folder"
    return None


def unsafe_log_file(model: StudyManifest) -> str | None:
    for i, entry in enumerate(model.experiments):
        if entry.log_file is not None:
            reason = log_file_reason(entry.log_file)
            if reason:
                return f"experiments.{i}: {reason}"
    return None


def mark_interrupted(model: StudyManifest) -> StudyManifest:
    """What llenergymeasure's ``ManifestWriter.mark_interrupted()`` writes: study and running entries
    interrupted, counts recomputed, nothing else touched (no time is set)."""
    entries = [e.model_copy(update={"status": "interrupted"}) if e.status == "running" else e for e in model.experiments]
    return model.model_copy(update={"status": "interrupted", "experiments": entries, **recount(entries)})


def study_status(model: StudyManifest) -> ExperimentStatus:
    return STUDY_TO_STATUS[model.status]
