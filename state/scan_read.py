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
from collections.abc import Callable
from typing import Any, TypeVar

from state.decoding import decode_json, detect_format
from state.local_time import DateOutOfRange, aware, local_iso
from state.paths import MAX_ID_LENGTH, unsafe_id_reason
from state.record import ExperimentRecord, FileVersion, ProcessRow, StateFormat
from state.transitions import LEM_PROCESS_STATUSES, ExperimentPhase, ExperimentStatus, phase_to_status


class Unsure(Exception):
    """This reader cannot vouch for the file: the full validation decides."""


def read_record(key: str, path: Path, version: FileVersion, data: bytes) -> ExperimentRecord:
    """Bytes -> summary row, or ``BrokenStateFile`` (``NotAnExperiment`` for files to skip)."""
    value = decode_json(data)
    return record_of(key, path, version, detect_format(value), value)


def record_of(key: str, path: Path, version: FileVersion, fmt: StateFormat, value: dict[str, Any]) -> ExperimentRecord:
    """A decoded file's summary row: built here where this reader can vouch for it, else fully validated."""
    try:
        if fmt is StateFormat.LEM_V1:
            return lem_v1_record(key, path, version, value)
        if fmt is StateFormat.LEM_V2:
            return lem_v2_record(key, path, version, value)
    except Unsure:
        pass
    from state.detect import validated_record  # the pydantic models: loaded on the first file that needs them

    return validated_record(key, path, version, fmt, value)


#: The fields a v1 file may hold (its model forbids any other).
V1_FIELDS = frozenset({
    "experiment_id", "status", "cycle_id", "config_path", "config_hash", "model_name", "prompt_args",
    "num_processes", "subprocess_pid", "process_progress", "started_at", "last_updated", "error_message",
    "completed_runs", "failed_runs", "total_runs",
})
V2_FIELDS = frozenset({
    "experiment_id", "phase", "failed", "config_hash", "error_message", "started_at", "last_updated",
    "subprocess_pid",
})
STATUSES = frozenset(s.value for s in ExperimentStatus)
PROCESS_STATUSES = frozenset(s.value for s in LEM_PROCESS_STATUSES)
PHASES = frozenset(p.value for p in ExperimentPhase)
#: How llenergymeasure writes a time (``isoformat()`` of a naive one: the fraction only when not zero).
ISO_TIME_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-5][0-9]:[0-5][0-9](?:\.[0-9]{6})?"
_ISO_TIME = re.compile(ISO_TIME_PATTERN)
#: A process key as llenergymeasure writes it (``str(index)``); "01" or "+1" also read as 1 in full validation.
INDEX_KEY_PATTERN = r"0|[1-9][0-9]{0,17}"
_INDEX_KEY = re.compile(INDEX_KEY_PATTERN)
#: Integers the models take: 64-bit signed, less its lowest value.
INT_LIMIT = 2**63
#: An id ``unsafe_id_reason`` passes at a glance (most are): no separator, control character or leading dot.
PLAIN_ID_PATTERN = r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,%d}" % (MAX_ID_LENGTH - 1)
_PLAIN_ID = re.compile(PLAIN_ID_PATTERN)


def _int(value: Any) -> int:
    if type(value) is not int or not -INT_LIMIT < value < INT_LIMIT:
        raise Unsure
    return value


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _opt_str(value: Any) -> str | None:
    if value is not None and type(value) is not str:
        raise Unsure
    return value


def _time_text(value: Any) -> str | None:
    """A time as llenergymeasure writes it (naive ISO text), or ``Unsure``; its range is checked on conversion."""
    if value is not None and (type(value) is not str or not _ISO_TIME.fullmatch(value)):
        raise Unsure
    return value


def opt_time(value: Any) -> datetime | None:
    """A naive ISO time, made aware as the full path makes it; ``Unsure`` for anything else."""
    text = _time_text(value)
    if text is None:
        return None
    try:
        return aware(datetime.fromisoformat(text))
    except (ValueError, DateOutOfRange):
        raise Unsure from None


def _time_texts(value: Any) -> tuple[str, str] | None:
    text = _time_text(value)
    if text is None:
        return None
    try:
        return local_iso(text)
    except (ValueError, DateOutOfRange):
        raise Unsure from None


def naive_time_text(value: Any) -> str | None:
    """What ``opt_time(value)`` is, written back as a naive local time (as the file has it, mostly)."""
    texts = _time_texts(value)
    return None if texts is None else texts[0]


def aware_time_text(value: Any) -> str | None:
    """``opt_time(value).isoformat()``: the time with the local offset it is read with."""
    texts = _time_texts(value)
    return None if texts is None else texts[1]


def _experiment_id(value: dict[str, Any]) -> str:
    ident = value.get("experiment_id")
    if type(ident) is not str or (not _PLAIN_ID.fullmatch(ident) and unsafe_id_reason(ident)):
        raise Unsure
    return ident


def _string_map(value: Any) -> dict[str, str]:
    if type(value) is not dict or any(type(v) is not str for v in value.values()):
        raise Unsure
    return value


T = TypeVar("T")
P = TypeVar("P")
Time = Callable[[Any], T]
"""How a reader wants a checked time: a ``datetime`` for the row, text for ``list --json``."""


def _process(key: Any, entry: Any, time: Time[T]) -> tuple[int, tuple[int, str, int | None, T | None, T | None, str | None]]:
    """A v1 ``process_progress`` entry (unknown fields ignored, as the model does) as
    (key, (index, status, gpu_id, started_at, completed_at, error))."""
    if type(key) is not str or not _INDEX_KEY.fullmatch(key) or type(entry) is not dict:
        raise Unsure
    status = entry.get("status", "pending")
    if type(status) is not str or status not in PROCESS_STATUSES:
        raise Unsure
    get = entry.get
    return int(key), (
        _int(get("process_index")),
        status,
        _opt_int(get("gpu_id")),
        time(get("started_at")),
        time(get("completed_at")),
        _opt_str(get("error_message")),
    )


def lem_v1_fields(value: dict[str, Any], time: Time[T], process_time: Time[P]) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """A llenergymeasure v1 file checked field by field: (the summary's fields, the process rows in
    key order as ``_process`` gives them); ``Unsure`` when not certain the full validation agrees.

    The one place both readers (the row and ``list --json``'s straight path) check a v1 file;
    ``time`` converts the top-level times, ``process_time`` the processes'.
    """
    get = value.get
    if not value.keys() <= V1_FIELDS or get("last_updated") is None:
        raise Unsure
    status = get("status", "initialised")
    if type(status) is not str or status not in STATUSES:
        raise Unsure
    progress = get("process_progress", {})
    prompt_args = get("prompt_args", {})
    if type(progress) is not dict or type(prompt_args) is not dict:
        raise Unsure
    _int(get("cycle_id", 0))
    _opt_str(get("config_path"))
    procs = [row for _, row in sorted((_process(k, v, process_time) for k, v in progress.items()), key=_first)]
    return {
        "experiment_id": _experiment_id(value),
        "status": status,
        "processes_total": _int(get("num_processes", 1)),
        "processes_done": sum(p[1] == "completed" for p in procs),
        "runs_done": len(_string_map(get("completed_runs", {}))),
        "runs_failed": len(_string_map(get("failed_runs", {}))),
        "runs_total": _int(get("total_runs", 0)),
        "legacy_pid": _opt_int(get("subprocess_pid")),
        "started_at": time(get("started_at")),
        "last_updated": time(get("last_updated")),
        "error_message": _opt_str(get("error_message")),
        "config_hash": _opt_str(get("config_hash")),
        "model_name": _opt_str(get("model_name")),
    }, procs


def _first(pair: tuple[int, Any]) -> int:
    return pair[0]


def lem_v2_fields(value: dict[str, Any], time: Time[T]) -> dict[str, Any]:
    """A llenergymeasure v2 file checked field by field, as ``lem_v1_fields`` checks v1 (no processes)."""
    get = value.get
    if not value.keys() <= V2_FIELDS or get("last_updated") is None:
        raise Unsure
    phase = get("phase", "initialising")
    failed = get("failed", False)
    if type(phase) is not str or phase not in PHASES or type(failed) is not bool:
        raise Unsure
    return {
        "experiment_id": _experiment_id(value),
        "status": phase_to_status(phase, failed).value,
        "raw_status": phase + (" (failed)" if failed else ""),
        "legacy_pid": _opt_int(get("subprocess_pid")),
        "started_at": time(get("started_at")),
        "last_updated": time(get("last_updated")),
        "error_message": _opt_str(get("error_message")),
        "config_hash": _opt_str(get("config_hash")),
    }


def lem_v1_record(key: str, path: Path, version: FileVersion, value: dict[str, Any]) -> ExperimentRecord:
    """A llenergymeasure v1 file's row, as ``state.detect`` builds it; ``Unsure`` when not certain."""
    fields, procs = lem_v1_fields(value, opt_time, opt_time)
    return ExperimentRecord(
        key=key,
        path=path,
        format=StateFormat.LEM_V1,
        raw_status=fields["status"],
        version=version,
        processes=tuple(
            ProcessRow(index=i, status=s, gpu_id=g, started_at=b, completed_at=c, error=e) for i, s, g, b, c, e in procs
        ),
        **fields,
    )


def lem_v2_record(key: str, path: Path, version: FileVersion, value: dict[str, Any]) -> ExperimentRecord:
    """A llenergymeasure v2 file's row, as ``state.detect`` builds it; ``Unsure`` when not certain."""
    return ExperimentRecord(key=key, path=path, format=StateFormat.LEM_V2, version=version, **lem_v2_fields(value, opt_time))
