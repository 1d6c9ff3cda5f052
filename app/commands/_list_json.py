"""What ``expwatch list --json`` prints for each entry, and its straight path for llenergymeasure files.

``record_json`` turns a summary row into the output object. A cold
``list --json`` over 10,000 llenergymeasure files spent 18.6 µs a file building
that row (frozen dataclasses, six time conversions) and 8 µs more turning it
into the object, against a floor of 11 µs to read and parse the file. For the
files the scan's readers vouch for, ``read_listed`` goes from the checked value
to the output object directly: from the bytes where ``state.lem_bytes`` checks
them, else from the hand checks (``state.scan_read.lem_v1_fields`` and
``lem_v2_fields``); the times written as text without a ``datetime`` where their
hour allows (``state.local_time.local_iso``). A running one also carries the few
fields its verdict is judged from. Everything else (other formats, files neither
reader is sure of) takes the usual path and gives a row. Either way the printed
bytes are the same; tests/runtime/test_list_json_straight.py compares the paths
on generated and hostile files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import functools
from collections.abc import Callable
from typing import Any

from app.commands._common import item_bytes, iso
from state.decoding import decode_json, detect_format
from state.lem_bytes import Process, checked_lem, v2_fields
from state.local_time import DateOutOfRange, local_iso, local_timestamp
from state.record import BrokenRecord, ExperimentRecord, FileVersion, ProcessRow, StateFormat
from state.scan_read import (
    Unsure,
    aware_time_text,
    lem_v1_fields,
    lem_v2_fields,
    naive_time_text,
    opt_time,
    record_of,
)
from state.transitions import lem_incomplete_reason
from state.verdict import StaleVerdict

#: Formats whose files hold naive local times: their JSON keeps them naive, as written.
NAIVE_TIME_FORMATS = (StateFormat.LEM_V1, StateFormat.LEM_V2)
NAIVE_TIMES = "naive local time, as in the file"
AWARE_TIMES = "with the offset the file gives"


def verdict_json(verdict: StaleVerdict | None) -> dict[str, Any] | None:
    if verdict is None:
        return None
    return {"liveness": verdict.liveness.value, "reason": verdict.reason, "evidence": list(verdict.evidence)}


def record_json(record: ExperimentRecord, verdict: StaleVerdict | None) -> dict[str, Any]:
    naive = record.format in NAIVE_TIME_FORMATS
    return {
        "experiment_id": record.experiment_id,
        "key": record.key,
        "status": record.status,
        "raw_status": record.raw_status,
        "format": record.format.value,
        "path": str(record.path),
        "name": record.name,
        "runs_done": record.runs_done,
        "runs_failed": record.runs_failed,
        "runs_total": record.runs_total,
        "processes_done": record.processes_done,
        "processes_total": record.processes_total,
        "attempt": record.attempt,
        "verdict": verdict_json(verdict),
        "started_at": iso(record.started_at, naive=naive),
        "last_updated": iso(record.last_updated, naive=naive),
        "times": NAIVE_TIMES if naive else AWARE_TIMES,
        "error_message": record.error_message,
        "log_path": record.log_path,
        "config_hash": record.config_hash,
        "model_name": record.model_name,
        "incomplete_reason": lem_incomplete_reason(record.status) if record.format is StateFormat.LEM_V1 else None,
        "energy_joules": record.energy_joules,
        "finished_at": iso(record.finished_at, naive=naive),
        "processes": [process_json(p) for p in record.processes],
    }


def process_json(row: ProcessRow) -> dict[str, Any]:
    """One process row (a study: one entry, with its config summary and cycle as ``label``)."""
    return {
        "index": row.index,
        "status": row.status,
        "label": row.label,
        "gpu_id": row.gpu_id,
        "pid": row.pid,
        "runs_done": row.runs_done,
        "runs_failed": row.runs_failed,
        "runs_total": row.runs_total,
        "started_at": iso(row.started_at),
        "completed_at": iso(row.completed_at),
        "error": row.error,
        "energy_joules": row.energy_joules,
    }


def broken_json(entry: BrokenRecord) -> dict[str, Any]:
    return {
        "experiment_id": entry.key,
        "key": entry.key,
        "status": "broken",
        "format": None,
        "path": str(entry.path),
        "error": entry.reason,
    }


@dataclass(slots=True)
class ListedRow:
    """An entry ``list --json`` prints as it is: its output object, and what the listing sorts and filters by."""

    key: str
    status: str
    updated: float
    """``last_updated`` as a timestamp (the files that take this path always have one)."""
    json: dict[str, Any] | bytes
    """The output object; or, once ``written`` (nothing is added to one that is not running),
    its text as an item of the printed array (``item_bytes``)."""
    judged: ExperimentRecord | None = None
    """A running one's row with what its verdict is judged from (its owner pid and times), else None."""
    host = None
    broken = False


def listed_reader(root: Path, source: str) -> Callable[[str, Path, FileVersion, bytes], ExperimentRecord | ListedRow]:
    """``read_listed`` for the files directly in ``root``, listed as ``source``'s: each object's path
    written from a prefix made once (``str()`` of 10,000 paths was 4 % of a cold ``list --json``),
    and each object that is not running written out as it is read (``written``)."""
    return functools.partial(read_listed, prefix=path_prefix(root), source=source)


def written(row: ListedRow, source: str) -> ListedRow:
    """``row`` with its source named (the last two fields of every printed object) and, unless a
    verdict is still to be added, its object written out.

    A cold ``list --json`` over 10,000 files kept 10,000 objects (with their processes, 40 MB)
    until it printed them: fresh memory, 13,000 page faults at about 3.4 µs each here, and
    orjson then read every object back from cold memory. Written as read, each object's memory
    serves the next file and only the text (a third of the size) is kept."""
    obj = row.json
    obj["source"] = source
    obj["host"] = None
    if row.judged is None:
        row.json = item_bytes(obj)
    return row


def path_prefix(root: Path) -> str:
    """What ``str(root / name)`` writes before ``name``, for a plain file name."""
    text = str(root)
    if text == ".":
        return ""
    return text if text.endswith("/") else text + "/"


def read_listed(key: str, path: Path, version: FileVersion, data: bytes, prefix: str | None = None,
                source: str | None = None) -> ExperimentRecord | ListedRow:
    """``StateStore.reader`` for ``list --json``: a ``ListedRow`` where the light reader vouches for the
    file (a running one's with the row its verdict is judged from), else the row ``read_record``
    gives; raises as ``read_record`` does. Given the ``source`` it is listed as, a row's object
    is completed and, unless running, ``written``.

    Most llenergymeasure files are checked from their bytes (``state.lem_bytes``); the
    rest are decoded and checked by hand (``state.scan_read``), as the dashboard reads them.
    """
    checked = checked_lem(data)
    if checked is not None:
        fmt, value, procs = checked  # what decode_json and detect_format give (tests/state/test_lem_bytes.py)
    else:
        value = decode_json(data)
        fmt = detect_format(value)
    try:
        if fmt is StateFormat.LEM_V1:
            if checked is not None:
                row = _checked_v1(key, path if prefix is None else prefix + key + ".json", value, procs)
            else:
                row = _v1_listed(key, path, value, *lem_v1_fields(value, naive_time_text, aware_time_text))
        elif fmt is StateFormat.LEM_V2:
            row = _v2_listed(key, path, value, v2_fields(value) if checked else lem_v2_fields(value, naive_time_text))
        else:
            return record_of(key, path, version, fmt, value)
        if row.status == "running":
            row.judged = _judged(key, path, version, fmt, value["experiment_id"], value)
        return row if source is None else written(row, source)
    except Unsure:
        pass
    return record_of(key, path, version, fmt, value)


def _v1_listed(key: str, path: Path, value: dict[str, Any], fields: dict[str, Any], procs: list[tuple[Any, ...]]) -> ListedRow:
    status = fields["status"]
    processes = [_process_json(*proc) for proc in procs]
    return _listed(key, path, value, StateFormat.LEM_V1, {**fields, "raw_status": status}, processes, lem_incomplete_reason(status))


def _process_json(index: int, state: str, gpu: int | None, started: str | None, completed: str | None, error: str | None) -> dict[str, Any]:
    """``process_json``'s object for a llenergymeasure v1 process entry, its times already written."""
    return {
        "index": index,
        "status": state,
        "label": None,
        "gpu_id": gpu,
        "pid": None,
        "runs_done": 0,
        "runs_failed": 0,
        "runs_total": 0,
        "started_at": started,
        "completed_at": completed,
        "error": error,
        "energy_joules": None,
    }


def _judged(key: str, path: Path, version: FileVersion, fmt: StateFormat, ident: str, value: dict[str, Any]) -> ExperimentRecord:
    """The row a running llenergymeasure file's verdict is judged from: ``judge_record`` reads its
    recorded pid and times alone (``judge_legacy_pid``). Its other fields are left at their defaults:
    the printed object comes from the file, and building the whole row cost 25 µs a file against 5."""
    return ExperimentRecord(
        key=key,
        path=path,
        format=fmt,
        experiment_id=ident,
        status="running",
        version=version,
        legacy_pid=value.get("subprocess_pid"),
        started_at=opt_time(value.get("started_at")),
        last_updated=opt_time(value["last_updated"]),
    )


def _checked_v1(key: str, path: Path | str, value: dict[str, Any], procs: list[Process]) -> ListedRow:
    """``_v1_listed(key, path, value, *lem_v1_fields(value, naive_time_text, aware_time_text))`` for a
    value ``checked_lem`` passed, with the process entries it read: no field is checked again."""
    get = value.get
    status = get("status", "initialised")
    started = get("started_at")
    processes = []
    done = 0
    try:
        for index, state, gpu, began, ended, error in procs:
            done += state == "completed"
            processes.append(_process_json(
                index, state, gpu, began and local_iso(began)[1], ended and local_iso(ended)[1], error,
            ))
        fields = {
            "experiment_id": value["experiment_id"],  # plain: checked_lem checked it
            "status": status,
            "raw_status": status,
            "runs_done": len(get("completed_runs") or ()),
            "runs_failed": len(get("failed_runs") or ()),
            "runs_total": get("total_runs", 0),
            "processes_done": done,
            "processes_total": get("num_processes", 1),
            "started_at": started and local_iso(started)[0],
            "last_updated": local_iso(value["last_updated"])[0],
            "error_message": get("error_message"),
            "config_hash": get("config_hash"),
            "model_name": get("model_name"),
        }
        return _listed(key, path, value, StateFormat.LEM_V1, fields, processes, lem_incomplete_reason(status))
    except (ValueError, DateOutOfRange):
        raise Unsure from None


#: What a v2 file's row holds where v1 has a field: nothing (``ExperimentRecord``'s defaults).
_V2_ABSENT = {"runs_done": 0, "runs_failed": 0, "runs_total": 0, "processes_done": 0, "processes_total": 0, "model_name": None}


def _v2_listed(key: str, path: Path, value: dict[str, Any], fields: dict[str, Any]) -> ListedRow:
    return _listed(key, path, value, StateFormat.LEM_V2, {**_V2_ABSENT, **fields}, [], None)


def _listed(key: str, path: Path | str, value: dict[str, Any], fmt: StateFormat, f: dict[str, Any],
            processes: list[dict[str, Any]], incomplete: str | None) -> ListedRow:
    """``record_json``'s object for a llenergymeasure file, from its checked fields."""
    return ListedRow(key, f["status"], local_timestamp(value["last_updated"]), {
        "experiment_id": f["experiment_id"],
        "key": key,
        "status": f["status"],
        "raw_status": f["raw_status"],
        "format": fmt.value,
        "path": path if type(path) is str else str(path),
        "name": None,
        "runs_done": f["runs_done"],
        "runs_failed": f["runs_failed"],
        "runs_total": f["runs_total"],
        "processes_done": f["processes_done"],
        "processes_total": f["processes_total"],
        "attempt": 1,
        "verdict": None,
        "started_at": f["started_at"],
        "last_updated": f["last_updated"],
        "times": NAIVE_TIMES,
        "error_message": f["error_message"],
        "log_path": None,
        "config_hash": f["config_hash"],
        "model_name": f["model_name"],
        "incomplete_reason": incomplete,
        "energy_joules": None,
        "finished_at": None,
        "processes": processes,
    })
