"""A state file fully validated: its pydantic model, and the summary row built from it.

Every failure becomes a ``BrokenStateFile`` with a specific, human reason;
nothing here raises anything else for bad input. Decoding and format detection
live in ``state.decoding`` (re-exported here); the directory scan reads most
llenergymeasure files through ``state.scan_read`` without building a model, and
comes here for everything else. Show, the inspector and the actions always do.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from state.lem import LemExperimentState, LemV2ExperimentState
from state.decoding import (  # noqa: F401 - re-exported: the names callers know from here
    MAX_JSON_DEPTH,
    MAX_STATE_FILE_BYTES,
    BrokenStateFile,
    NotAnExperiment,
    nested_deeper_than,
    decode_json,
    detect_format,
)
from state.lem_study import StudyManifest, contradiction, study_status, unsafe_log_file
from state.local_time import DateOutOfRange, aware, shared_tz
from state.native import ExperimentDoc, RunStatus, UnknownSchemaError, migrate
from state.paths import unsafe_id_reason
from state.record import ExperimentRecord, FileVersion, ProcessRow, StateFormat
from state.transitions import ExperimentStatus, ProcessStatus, phase_to_status


StateModel = LemExperimentState | LemV2ExperimentState | ExperimentDoc | StudyManifest


def _validation_reason(err: ValidationError) -> str:
    first = err.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    kind = first["type"]
    given = first.get("input")
    if kind == "enum" and loc.endswith("status"):
        return f"unknown status {given!r} in {loc}"
    if kind == "enum" and loc.endswith("phase"):
        return f"unknown phase {given!r}"
    if kind == "extra_forbidden":
        return f"unexpected field {loc!r}"
    if kind == "missing":
        return f"missing required field {loc!r}"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    shown = repr(given)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"wrong type at {loc}: {first['msg']} (got {shown}){more}"


def _validate(fmt: StateFormat, value: Any) -> StateModel:
    try:
        if fmt is StateFormat.EXPWATCH:
            model: StateModel = ExperimentDoc.model_validate(migrate(value))
        elif fmt is StateFormat.LEM_STUDY:
            return _validate_study(value)
        elif fmt is StateFormat.LEM_V2:
            model = LemV2ExperimentState.model_validate(value)
        else:
            model = LemExperimentState.model_validate(value)
    except UnknownSchemaError as exc:
        raise BrokenStateFile(str(exc)) from None
    except ValidationError as exc:
        raise BrokenStateFile(_validation_reason(exc)) from None
    reason = unsafe_id_reason(model.experiment_id)
    if reason:
        raise BrokenStateFile(f"unsafe id: {reason}")
    return model


def _validate_study(value: Any) -> StudyManifest:
    model = StudyManifest.model_validate(value)
    reason = contradiction(model) or unsafe_log_file(model)
    if reason:
        raise BrokenStateFile(reason)
    return model


def parse_state(data: bytes) -> tuple[StateFormat, StateModel]:
    """Decode, detect and validate one state file's bytes."""
    value = decode_json(data)
    fmt = detect_format(value)
    return fmt, _validate(fmt, value)


COUNT_RUNS_ABOVE = 2_000
"""Above this many runs the directory scan counts an expwatch file's runs instead of validating each."""

_RUN_STATUSES = {s.value: s for s in RunStatus}


def _count_runs(runs: list[Any], attempt: Any) -> tuple[int, int, int]:
    """(completed, failed, finished by ``attempt``) from raw run objects, checking only what the summary reads."""
    done = failed = by_attempt = 0
    for i, run in enumerate(runs):
        status = run.get("status", "pending") if isinstance(run, dict) else None
        if status not in _RUN_STATUSES:
            if not isinstance(run, dict):
                raise BrokenStateFile(f"wrong type at runs.{i}: not an object")
            raise BrokenStateFile(f"unknown status {status!r} in runs.{i}.status")
        if status == "completed":
            done += 1
        elif status == "failed":
            failed += 1
        else:
            continue
        if run.get("attempt") == attempt:
            by_attempt += 1
    return done, failed, by_attempt


def read_record(key: str, path: Path, version: FileVersion, data: bytes) -> ExperimentRecord:
    """Bytes -> summary row through full validation, or ``BrokenStateFile`` (see ``validated_record``)."""
    value = decode_json(data)
    return validated_record(key, path, version, detect_format(value), value)


def validated_record(key: str, path: Path, version: FileVersion, fmt: StateFormat, value: Any) -> ExperimentRecord:
    """A decoded file of format ``fmt`` -> summary row, or ``BrokenStateFile``.

    Same as ``summarize(parse_state(...))`` except for expwatch files with more
    than ``COUNT_RUNS_ABOVE`` runs: there every other field is validated but
    the runs are only counted by status (validating 100,000 run records costs
    over a second and the row shows only their counts). Loading the file
    (inspector, actions) still validates every run.
    """
    runs = value.get("runs") if fmt is StateFormat.EXPWATCH else None
    if isinstance(runs, list) and len(runs) > COUNT_RUNS_ABOVE:
        done, failed, by_attempt = _count_runs(runs, value.get("attempt", 1))
        model = _validate(fmt, {**value, "runs": []})
        return summarize(key, path, version, fmt, model, run_counts=(done, failed, len(runs), by_attempt))
    return summarize(key, path, version, fmt, _validate(fmt, value))


def _aware(value: datetime | None) -> datetime | None:
    """Local-aware time (``state.local_time.aware``); years 1 and 9999 make the file broken."""
    try:
        return aware(value)
    except DateOutOfRange as exc:
        raise BrokenStateFile(str(exc)) from None


def summarize(
    key: str,
    path: Path,
    version: FileVersion,
    fmt: StateFormat,
    model: BaseModel,
    run_counts: tuple[int, int, int, int] | None = None,
) -> ExperimentRecord:
    """Build the common read model from a validated state model.

    ``run_counts`` (completed, failed, total) stands in for ``model.runs`` when
    the scan counted them itself (see ``read_record``).
    """
    if isinstance(model, LemExperimentState):
        procs = process_rows(model)
        return ExperimentRecord(
            key=key,
            path=path,
            format=fmt,
            experiment_id=model.experiment_id,
            status=model.status.value,
            raw_status=model.status.value,
            version=version,
            processes=procs,
            processes_total=model.num_processes,
            processes_done=sum(p.status == "completed" for p in procs),
            runs_done=len(model.completed_runs),
            runs_failed=len(model.failed_runs),
            runs_total=model.total_runs,
            legacy_pid=model.subprocess_pid,
            started_at=_aware(model.started_at),
            last_updated=_aware(model.last_updated),
            error_message=model.error_message,
            config_hash=model.config_hash,
            model_name=model.model_name,
        )
    if isinstance(model, StudyManifest):
        return _summarize_study(key, path, version, model)
    if isinstance(model, LemV2ExperimentState):
        return ExperimentRecord(
            key=key,
            path=path,
            format=fmt,
            experiment_id=model.experiment_id,
            status=phase_to_status(model.phase, model.failed).value,
            raw_status=model.phase.value + (" (failed)" if model.failed else ""),
            version=version,
            legacy_pid=model.subprocess_pid,
            started_at=_aware(model.started_at),
            last_updated=_aware(model.last_updated),
            error_message=model.error_message,
            config_hash=model.config_hash,
        )
    assert isinstance(model, ExperimentDoc)
    procs = process_rows(model)
    if run_counts is None:
        done = sum(1 for run in model.runs if run.status is RunStatus.COMPLETED)
        failed = sum(1 for run in model.runs if run.status is RunStatus.FAILED)
        total = len(model.runs)
        by_attempt = sum(
            1 for run in model.runs if run.attempt == model.attempt and run.status in (RunStatus.COMPLETED, RunStatus.FAILED)
        )
    else:
        done, failed, total, by_attempt = run_counts
    resumed = [h.at for h in model.history if h.to is ExperimentStatus.RUNNING]
    return ExperimentRecord(
        key=key,
        path=path,
        format=fmt,
        experiment_id=model.experiment_id,
        name=model.name,
        status=model.status.value,
        raw_status=model.status.value,
        version=version,
        processes=procs,
        processes_total=model.num_processes,
        processes_done=sum(p.status == ProcessStatus.COMPLETED.value for p in procs),
        runs_done=done,
        runs_failed=failed,
        runs_total=total,
        owner=model.owner,
        workers=tuple(p.owner for p in model.processes.values() if p.owner is not None),
        heartbeat_at=_aware(model.heartbeat_at),
        heartbeat_interval_s=model.heartbeat_interval_s,
        created_at=_aware(model.created_at),
        started_at=_aware(model.started_at),
        finished_at=_aware(model.finished_at),
        last_updated=_aware(model.last_updated),
        error_message=model.error_message,
        config_hash=model.config_hash,
        model_name=str(model.config.get("model")) if model.config.get("model") else None,
        energy_joules=model.energy.used_joules if model.energy else None,
        attempt=model.attempt,
        # A first attempt is the whole history: its rate needs no per-run attempt numbers.
        attempt_started_at=_aware(resumed[-1]) if resumed and model.attempt > 1 else None,
        attempt_runs_finished=by_attempt if model.attempt > 1 else None,
        log_path=model.log_path,
        resumable_by_runner=model.resume is not None,
    )


def _entry_error(error_type: str | None, message: str | None) -> str | None:
    if error_type and message:
        return f"{error_type}: {message}"
    return error_type or message


def process_rows(model: StateModel, *, detail: bool = False) -> tuple[ProcessRow, ...]:
    """One row per process, by process index; () for formats without processes.

    ``detail`` adds what only one open file can afford (the host and the
    heartbeat): the scan leaves them out across 100,000 files.
    """
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
                host=(p.owner.host if p.owner else None) if detail else None,
                heartbeat_at=_aware(p.heartbeat_at) if detail else None,
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


def study_process_rows(model: StudyManifest) -> tuple[ProcessRow, ...]:
    """A study's entries as process rows: config summary and cycle as the label, error type and message."""
    return tuple(
        ProcessRow(
            index=i,
            status=e.status,
            started_at=_aware(e.started_at),
            completed_at=_aware(e.completed_at),
            error=_entry_error(e.error_type, e.error_message),
            label=f"{e.config_summary} (cycle {e.cycle})",
            energy_joules=e.energy_joules,
        )
        for i, e in enumerate(model.experiments)
    )


def _summarize_study(key: str, path: Path, version: FileVersion, model: StudyManifest) -> ExperimentRecord:
    """A study as one row: its entries are its processes; the file's mtime is its last update.

    The id is the study folder's name (``<study_name>_<timestamp>``), which
    ``llem run --resume-dir`` takes; the name is the study's own.
    """
    procs = study_process_rows(model)
    energies = [e.energy_joules for e in model.experiments if e.energy_joules is not None]
    failures = [p.error for p in procs if p.status == "failed" and p.error]
    return ExperimentRecord(
        key=key,
        path=path,
        format=StateFormat.LEM_STUDY,
        experiment_id=Path(os.path.abspath(path)).parent.name,
        name=model.study_name,
        status=study_status(model).value,
        raw_status=model.status,
        version=version,
        processes=procs,
        processes_total=len(procs),
        processes_done=model.completed,
        runs_done=model.completed,
        runs_failed=model.failed,
        runs_total=model.total_experiments,
        started_at=_aware(model.started_at),
        finished_at=_aware(model.completed_at),
        last_updated=shared_tz(datetime.fromtimestamp(version.mtime_ns / 1e9).astimezone()),
        error_message=failures[-1] if failures else None,
        config_hash=model.study_design_hash or None,
        energy_joules=sum(energies) if energies else None,
    )
