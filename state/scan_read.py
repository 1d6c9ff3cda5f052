"""The directory scan's reader: a file's bytes -> its summary row, without pydantic where it can.

A cold ``expwatch list`` over 10,000 llenergymeasure files spent most of its
time building and validating pydantic models of which it shows a few fields
(and 150 ms importing them). llenergymeasure v1 and v2 files have flat,
known shapes: this module checks every field of them by hand and builds the
row directly. It vouches only for what it is sure the full validation
(``state.detect``) accepts, with the same values: anything else (an
unexpected field, a wrong type, a time written another way, a missing
``last_updated``, an unsafe id) goes to the full validation, which then
either accepts it or says precisely why not. So the two paths give the same
row or the same broken reason for every file; tests/state/test_scan_read.py
holds them to it. expwatch's own files and study manifests always take the
full path; show, the inspector and the actions always validate fully.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from state.decoding import decode_json, detect_format
from state.local_time import DateOutOfRange, aware
from state.paths import unsafe_id_reason
from state.record import ExperimentRecord, FileVersion, ProcessRow, StateFormat
from state.transitions import LEM_PROCESS_STATUSES, ExperimentPhase, ExperimentStatus, phase_to_status


class _Unsure(Exception):
    """This reader cannot vouch for the file: the full validation decides."""


def read_record(key: str, path: Path, version: FileVersion, data: bytes) -> ExperimentRecord:
    """Bytes -> summary row, or ``BrokenStateFile`` (``NotAnExperiment`` for files to skip)."""
    value = decode_json(data)
    fmt = detect_format(value)
    try:
        if fmt is StateFormat.LEM_V1:
            return lem_v1_record(key, path, version, value)
        if fmt is StateFormat.LEM_V2:
            return lem_v2_record(key, path, version, value)
    except _Unsure:
        pass
    from state.detect import validated_record  # the pydantic models: loaded on the first file that needs them

    return validated_record(key, path, version, fmt, value)


_V1_FIELDS = frozenset({
    "experiment_id", "status", "cycle_id", "config_path", "config_hash", "model_name", "prompt_args",
    "num_processes", "subprocess_pid", "process_progress", "started_at", "last_updated", "error_message",
    "completed_runs", "failed_runs", "total_runs",
})
_V2_FIELDS = frozenset({
    "experiment_id", "phase", "failed", "config_hash", "error_message", "started_at", "last_updated",
    "subprocess_pid",
})
_STATUSES = frozenset(s.value for s in ExperimentStatus)
_PROCESS_STATUSES = frozenset(s.value for s in LEM_PROCESS_STATUSES)
_PHASES = frozenset(p.value for p in ExperimentPhase)
#: How llenergymeasure writes a time (``isoformat()`` of a naive one: the fraction only when not zero).
_ISO_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?")
#: A process key as llenergymeasure writes it (``str(index)``); "01" or "+1" also read as 1 in full validation.
_INDEX_KEY = re.compile(r"0|[1-9][0-9]{0,17}")
_INT_LIMIT = 2**63


def _int(value: Any) -> int:
    if type(value) is not int or not -_INT_LIMIT < value < _INT_LIMIT:
        raise _Unsure
    return value


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _opt_str(value: Any) -> str | None:
    if value is not None and type(value) is not str:
        raise _Unsure
    return value


def _opt_time(value: Any) -> datetime | None:
    """A naive ISO time, made aware as the full path makes it; anything else is not for this reader."""
    if value is None:
        return None
    if type(value) is not str or not _ISO_TIME.fullmatch(value):
        raise _Unsure
    try:
        return aware(datetime.fromisoformat(value))
    except (ValueError, DateOutOfRange):
        raise _Unsure from None


def _experiment_id(value: dict[str, Any]) -> str:
    ident = value.get("experiment_id")
    if type(ident) is not str or unsafe_id_reason(ident):
        raise _Unsure
    return ident


def _string_map(value: Any) -> dict[str, str]:
    if type(value) is not dict or any(type(v) is not str for v in value.values()):
        raise _Unsure
    return value


def _process_row(key: Any, entry: Any) -> tuple[int, ProcessRow]:
    """A v1 ``process_progress`` entry (unknown fields ignored, as the model does) as (key, row)."""
    if type(key) is not str or not _INDEX_KEY.fullmatch(key) or type(entry) is not dict:
        raise _Unsure
    status = entry.get("status", "pending")
    if type(status) is not str or status not in _PROCESS_STATUSES:
        raise _Unsure
    return int(key), ProcessRow(
        index=_int(entry.get("process_index")),
        status=status,
        gpu_id=_opt_int(entry.get("gpu_id")),
        started_at=_opt_time(entry.get("started_at")),
        completed_at=_opt_time(entry.get("completed_at")),
        error=_opt_str(entry.get("error_message")),
    )


def lem_v1_record(key: str, path: Path, version: FileVersion, value: dict[str, Any]) -> ExperimentRecord:
    """A llenergymeasure v1 file's row, as ``state.detect`` builds it; ``_Unsure`` when not certain."""
    get = value.get
    if not value.keys() <= _V1_FIELDS or get("last_updated") is None:
        raise _Unsure
    status = get("status", "initialised")
    if type(status) is not str or status not in _STATUSES:
        raise _Unsure
    progress = get("process_progress", {})
    prompt_args = get("prompt_args", {})
    if type(progress) is not dict or type(prompt_args) is not dict:
        raise _Unsure
    _int(get("cycle_id", 0))
    _opt_str(get("config_path"))
    procs = tuple(row for _, row in sorted((_process_row(k, v) for k, v in progress.items()), key=_first))
    return ExperimentRecord(
        key=key,
        path=path,
        format=StateFormat.LEM_V1,
        experiment_id=_experiment_id(value),
        status=status,
        raw_status=status,
        version=version,
        processes=procs,
        processes_total=_int(get("num_processes", 1)),
        processes_done=sum(p.status == "completed" for p in procs),
        runs_done=len(_string_map(get("completed_runs", {}))),
        runs_failed=len(_string_map(get("failed_runs", {}))),
        runs_total=_int(get("total_runs", 0)),
        legacy_pid=_opt_int(get("subprocess_pid")),
        started_at=_opt_time(get("started_at")),
        last_updated=_opt_time(get("last_updated")),
        error_message=_opt_str(get("error_message")),
        config_hash=_opt_str(get("config_hash")),
        model_name=_opt_str(get("model_name")),
    )


def _first(pair: tuple[int, ProcessRow]) -> int:
    return pair[0]


def lem_v2_record(key: str, path: Path, version: FileVersion, value: dict[str, Any]) -> ExperimentRecord:
    """A llenergymeasure v2 file's row, as ``state.detect`` builds it; ``_Unsure`` when not certain."""
    get = value.get
    if not value.keys() <= _V2_FIELDS or get("last_updated") is None:
        raise _Unsure
    phase = get("phase", "initialising")
    failed = get("failed", False)
    if type(phase) is not str or phase not in _PHASES or type(failed) is not bool:
        raise _Unsure
    return ExperimentRecord(
        key=key,
        path=path,
        format=StateFormat.LEM_V2,
        experiment_id=_experiment_id(value),
        status=phase_to_status(phase, failed).value,
        raw_status=phase + (" (failed)" if failed else ""),
        version=version,
        legacy_pid=_opt_int(get("subprocess_pid")),
        started_at=_opt_time(get("started_at")),
        last_updated=_opt_time(get("last_updated")),
        error_message=_opt_str(get("error_message")),
        config_hash=_opt_str(get("config_hash")),
    )
