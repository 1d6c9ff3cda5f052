"""Tell state formats apart by content and turn a file into a record.

Every failure becomes a ``BrokenStateFile`` with a specific, human reason;
nothing here raises anything else for bad input.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from state.lem import LemExperimentState, LemV2ExperimentState
from state.lem_study import (
    STUDY_SCHEMA_VERSIONS,
    StudyManifest,
    contradiction,
    looks_like_study_manifest,
    looks_like_study_sidecar,
    study_status,
    unsafe_log_file,
)
from state.native import ExperimentDoc, RunStatus, UnknownSchemaError, migrate
from state.paths import unsafe_id_reason
from state.record import ExperimentRecord, FileVersion, ProcessRow, StateFormat
from state.transitions import ExperimentStatus, ProcessStatus, phase_to_status

MAX_STATE_FILE_BYTES = 64 * 1024 * 1024
"""Larger files are broken rows, refused from ``stat`` alone (100,000 runs take about 30 MiB)."""
MAX_JSON_DEPTH = 64

StateModel = LemExperimentState | LemV2ExperimentState | ExperimentDoc | StudyManifest


class BrokenStateFile(ValueError):
    """A state file that is not a readable experiment; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NotAnExperiment(Exception):
    """A file that lives in the directory but is not an experiment: skip it quietly."""


_FOLD_BRACKETS = bytes.maketrans(b"[]", b"{}")
_NOT_BRACKET_OR_QUOTE = bytes(i for i in range(256) if i not in b'{}[]"')


def _nested_deeper_than(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether valid JSON ``data`` nests containers deeper than ``limit``, from its bytes alone.

    Escapes go first (``\\\\`` then ``\\"``), then everything but brackets and
    quotes; an adjacent quote pair is an empty string or the seam of two
    strings, so dropping it keeps what is inside strings inside; brackets
    left inside strings go with them. Each pass then removes the innermost
    pairs: the number of passes is the depth. C-speed byte operations: a
    30 MB file takes under 0.1 s where walking the decoded value took 1.5 s.
    """
    s = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_BRACKET_OR_QUOTE)
    s = s.replace(b'""', b"")
    if b'"' in s:
        s = b"".join(s.split(b'"')[::2])
    s = s.translate(_FOLD_BRACKETS)
    for _ in range(limit):
        if not s:
            return False
        s = s.replace(b"{}", b"")
    return bool(s)


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


class _NonStandardJSON(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A file naming a key twice is ambiguous (which value counts?): refuse it."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _NonStandardJSON(f"duplicate key {key!r}")
            seen.add(key)
    return obj


def _refuse_constant(name: str) -> Any:
    """NaN and Infinity are not JSON; pydantic would write them back as null."""
    raise _NonStandardJSON(f"non-standard JSON value {name}")


_JSON_TYPE_NAMES = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def decode_json(data: bytes) -> Any:
    """bytes -> JSON value, or ``BrokenStateFile`` with the precise reason."""
    if len(data) > MAX_STATE_FILE_BYTES:
        raise BrokenStateFile(f"file larger than {MAX_STATE_FILE_BYTES // (1024 * 1024)} MiB")
    if not data.strip():
        raise BrokenStateFile("empty file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BrokenStateFile(
            f"not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    try:
        value = json.loads(
            text, object_pairs_hook=_object_without_duplicates, parse_constant=_refuse_constant
        )
    except _NonStandardJSON as exc:
        raise BrokenStateFile(str(exc)) from None
    except RecursionError:
        raise BrokenStateFile(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        # Text that ends early (a torn write) fails at its end, or inside a string running to the end.
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            raise BrokenStateFile(
                f"truncated JSON (ends at line {exc.lineno}, column {exc.colno})"
            ) from None
        raise BrokenStateFile(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    # Nesting needs one bracket per level: only a file with many brackets needs the check.
    if data.count(b"{") + data.count(b"[") > MAX_JSON_DEPTH and _nested_deeper_than(data):
        raise BrokenStateFile(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def detect_format(value: Any) -> StateFormat:
    """Which format a decoded JSON value is in, judged by its content alone."""
    if not isinstance(value, dict):
        kind = _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
        raise BrokenStateFile(f"top level is {kind}, not an object")
    if "schema" in value:
        schema = value["schema"]
        if isinstance(schema, str) and schema.startswith("expwatch.experiment/"):
            return StateFormat.EXPWATCH
        if isinstance(schema, str) and schema.startswith("expwatch."):
            raise NotAnExperiment(schema)
        raise BrokenStateFile(f"unknown schema {schema!r}")
    if looks_like_study_manifest(value):
        version = value.get("schema_version")
        if version not in STUDY_SCHEMA_VERSIONS:
            raise BrokenStateFile(f"llenergymeasure study manifest with unknown schema_version {version!r}")
        return StateFormat.LEM_STUDY
    if "experiment_id" not in value:
        if looks_like_study_sidecar(value):
            raise NotAnExperiment("llenergymeasure study sidecar")
        if "experiments" in value or "campaign_id" in value:
            raise NotAnExperiment("campaign manifest")
        raise BrokenStateFile("not an experiment state file (no experiment_id)")
    if "phase" in value:
        return StateFormat.LEM_V2
    return StateFormat.LEM_V1


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
    """The directory scan's reader: bytes -> summary row, or ``BrokenStateFile``.

    Same as ``summarize(parse_state(...))`` except for expwatch files with more
    than ``COUNT_RUNS_ABOVE`` runs: there every other field is validated but
    the runs are only counted by status (validating 100,000 run records costs
    over a second and the row shows only their counts). Loading the file
    (inspector, actions) still validates every run.
    """
    value = decode_json(data)
    fmt = detect_format(value)
    runs = value.get("runs") if fmt is StateFormat.EXPWATCH else None
    if isinstance(runs, list) and len(runs) > COUNT_RUNS_ABOVE:
        done, failed, by_attempt = _count_runs(runs, value.get("attempt", 1))
        model = _validate(fmt, {**value, "runs": []})
        return summarize(key, path, version, fmt, model, run_counts=(done, failed, len(runs), by_attempt))
    return summarize(key, path, version, fmt, _validate(fmt, value))


_TZ_CACHE: dict[tuple[timedelta | None, str | None], tzinfo] = {}


def _shared_tz(value: datetime) -> datetime:
    """``value`` with an equal tzinfo object shared by every value of that offset.

    ``astimezone()`` and the JSON parser make a new tzinfo (and name string)
    for each value: with four times a file and 100,000 files that was 100 MB.
    """
    tz = value.tzinfo
    assert tz is not None
    ident = (tz.utcoffset(value), tz.tzname(value))
    shared = _TZ_CACHE.get(ident)
    if shared is None:
        if len(_TZ_CACHE) > 256:  # offsets are few; never let odd input grow this without bound
            _TZ_CACHE.clear()
        offset, name = ident
        if offset is None:
            shared = tz
        else:
            shared = timezone(offset, name) if name is not None else timezone(offset)
        _TZ_CACHE[ident] = shared
    return value if shared is tz else value.replace(tzinfo=shared)


def _aware(value: datetime | None) -> datetime | None:
    """Local-aware time; years 1 and 9999 are refused, as any time-zone shift would leave the range."""
    if value is None:
        return value
    if not 1 < value.year < 9999:
        raise BrokenStateFile(f"date out of range ({value.isoformat()})")
    return _shared_tz(value if value.tzinfo is not None else value.astimezone())


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
        last_updated=_shared_tz(datetime.fromtimestamp(version.mtime_ns / 1e9).astimezone()),
        error_message=failures[-1] if failures else None,
        config_hash=model.study_design_hash or None,
        energy_joules=sum(energies) if energies else None,
    )
