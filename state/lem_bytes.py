"""llenergymeasure v1 and v2 files parsed by jiter and checked in one Python pass, for ``list --json``.

A cold ``list --json`` over 10,000 files spent 10.6 µs a file decoding (``json.loads``
calling a Python hook per object to refuse duplicate keys) and 8.4 µs checking fields
by hand (``state.scan_read``), against 5 µs for a bare ``json.loads``. Here jiter
(Rust, imported in under 1 ms) parses the bytes and refuses a key named twice at any
depth itself; the fields are then checked by the rules of ``scan_read.lem_v1_fields``
and ``lem_v2_fields``: the same fields, types, statuses, time spellings, id rule and
integer range, nothing else, and the process entries are handed on in key order so
that the listing does not read them again. A pydantic-core validator did this before,
with duplicate keys found by counting colons: per file the two cost the same (check and
printed object 17.7 µs against 18.1, in turn in one process), but loading it (import and
schemas) cost a new process 29.5 ms against 4.2 here; a cold ``list --json`` over 10,000
files takes 0.95x-1.03x as long as before, median 0.98x over five runs (docs/performance.md).

jiter and ``json.loads`` read JSON apart in a few places, so this path takes only
bytes where the two agree (tests/state/test_lem_bytes.py holds jiter to
``json.loads`` on that domain) and the rest goes back to ``decode_json``, which also
words the broken reason:

- ASCII with no ``\\u`` escape: no surrogate or UTF-8 question;
- no ``NaN`` or infinity literal (jiter refuses them when told to; ``1e400`` reads as
  infinity in both);
- nesting within ``MAX_JSON_DEPTH`` and integers within 64 bits, checked on the value:
  only the prompt arguments (and unknown process fields) are free-form.

tests/runtime/test_list_json_straight.py holds this path, the hand-checked one and
the full validation to the same output over generated, near-valid and hostile files.
The dashboard's row reader keeps the hand checks.
"""

from __future__ import annotations

import re
from typing import Any

from jiter import from_json

from state.decoding import MAX_JSON_DEPTH, MAX_STATE_FILE_BYTES
from state.local_time import DateOutOfRange, local_iso
from state.record import StateFormat
from state.scan_read import (
    INDEX_KEY_PATTERN,
    INT_LIMIT,
    ISO_TIME_PATTERN,
    PHASES,
    PLAIN_ID_PATTERN,
    PROCESS_STATUSES,
    STATUSES,
    V1_FIELDS,
    V2_FIELDS,
    Unsure,
)
from state.transitions import phase_to_status

_when = re.compile(ISO_TIME_PATTERN).fullmatch
#: Times joined by NUL (which no time holds): one match for a file's times, not one each (most of a
#: file's checks were regex calls, each costing more in the call than in the matching).
_SEPARATOR = "\0"
_all_times = re.compile(f"{ISO_TIME_PATTERN}(?:{_SEPARATOR}{ISO_TIME_PATTERN})*").fullmatch
# An id that is not plain goes the usual way, where unsafe_id_reason judges it.
_plain_id = re.compile(PLAIN_ID_PATTERN).fullmatch
_index_key = re.compile(INDEX_KEY_PATTERN).fullmatch
_TEXT_OR_NULL = frozenset({str, type(None)})
_LOW = -INT_LIMIT
_EMPTY: dict[str, Any] = {}
_PROCESS_FIELDS = frozenset({"process_index", "status", "gpu_id", "started_at", "completed_at", "error_message"})
#: Process keys as llenergymeasure writes them, in order: most files need no key matched.
_IN_ORDER = [str(i) for i in range(64)]


#: A v1 process entry as ``checked_lem`` passed it: (index, status, gpu_id, started_at,
#: completed_at, error_message), its times as the file writes them.
Process = tuple[int, str, int | None, str | None, str | None, str | None]


def checked_lem(data: bytes) -> tuple[StateFormat, dict[str, Any], list[Process]] | None:
    """(format, value, process entries in key order) of a llenergymeasure v1 or v2 file every field
    of which checks out, with the fields it leaves out absent (a v2 file has no processes); None
    for anything else, which the usual decoding then reads."""
    if len(data) > MAX_STATE_FILE_BYTES or not data.isascii() or (b"\\" in data and b"\\u" in data):
        return None
    try:
        value = from_json(data, catch_duplicate_keys=True, allow_inf_nan=False, cache_mode="keys")
    except ValueError:
        return None
    if type(value) is not dict:
        return None
    if "phase" in value:
        return (StateFormat.LEM_V2, value, []) if _v2_sound(value) else None
    processes = _v1_processes(value)
    return None if processes is None else (StateFormat.LEM_V1, value, processes)


def _v1_processes(value: dict[str, Any]) -> list[Process] | None:
    """The process entries of a v1 file in key order, where ``lem_v1_fields`` would take every field
    of ``value``; else None. (The listing reads the entries from here, not again from the value.)"""
    if not V1_FIELDS.issuperset(value):  # twice as fast as value.keys() <= V1_FIELDS
        return None
    get = value.get
    ident = get("experiment_id")
    status = get("status", "initialised")
    updated = get("last_updated")
    started = get("started_at")
    pid = get("subprocess_pid")
    cycle = get("cycle_id", 0)
    total = get("total_runs", 0)
    count = get("num_processes", 1)
    prompt_args = get("prompt_args", _EMPTY)
    done_runs = get("completed_runs", _EMPTY)
    failed_runs = get("failed_runs", _EMPTY)
    if not (
        type(ident) is str and _plain_id(ident) is not None
        and type(status) is str and status in STATUSES
        and type(cycle) is int and _LOW < cycle < INT_LIMIT
        and type(total) is int and _LOW < total < INT_LIMIT
        and type(count) is int and _LOW < count < INT_LIMIT
        and (pid is None or (type(pid) is int and _LOW < pid < INT_LIMIT))
        and type(get("config_path")) in _TEXT_OR_NULL and type(get("config_hash")) in _TEXT_OR_NULL
        and type(get("model_name")) in _TEXT_OR_NULL and type(get("error_message")) in _TEXT_OR_NULL
        and type(prompt_args) is dict and _free(prompt_args, 1)
        and type(done_runs) is dict and (not done_runs or _texts_only(done_runs))
        and type(failed_runs) is dict and (not failed_runs or _texts_only(failed_runs))
    ):
        return None
    progress = get("process_progress", _EMPTY)
    if type(progress) is not dict:
        return None
    times = [updated] if started is None else [updated, started]  # checked at the end, in one match
    items = progress.items()
    if progress and list(progress) != _IN_ORDER[: len(progress)]:
        for key in progress:
            if _index_key(key) is None:
                return None
        items = sorted(items, key=_index)
    processes = []
    for _, entry in items:
        if type(entry) is not dict:
            return None
        entry_get = entry.get
        index = entry_get("process_index")
        state = entry_get("status", "pending")
        gpu = entry_get("gpu_id")
        began = entry_get("started_at")
        ended = entry_get("completed_at")
        error = entry_get("error_message")
        if not (
            type(index) is int and _LOW < index < INT_LIMIT
            and type(state) is str and state in PROCESS_STATUSES
            and (gpu is None or (type(gpu) is int and _LOW < gpu < INT_LIMIT))
            and type(error) in _TEXT_OR_NULL
        ):
            return None
        if began is not None:
            times.append(began)
        if ended is not None:
            times.append(ended)
        if not _PROCESS_FIELDS.issuperset(entry):  # the model ignores fields it does not know here
            for extra in entry.keys() - _PROCESS_FIELDS:
                if not _free(entry[extra], 3):
                    return None
        processes.append((index, state, gpu, began, ended, error))
    return processes if _times(times) else None


def _times(texts: list[Any]) -> bool:
    """Whether every item of ``texts`` is a time as llenergymeasure writes it."""
    try:
        joined = _SEPARATOR.join(texts)
    except TypeError:  # an item that is not a string
        return False
    # A separator inside a text would pass as two times: the count tells them apart.
    return _all_times(joined) is not None and joined.count(_SEPARATOR) == len(texts) - 1


def _index(item: tuple[str, Any]) -> int:
    return int(item[0])


def _time(value: Any) -> bool:
    return type(value) is str and _when(value) is not None


def _free(value: Any, around: int) -> bool:
    """Whether a free-form value (a prompt argument, an unknown process field) is sure to read alike:
    its nesting within ``MAX_JSON_DEPTH`` (``around``: the containers around it) and its integers
    within 64 bits (a longer one may pass a lower limit on integer digits set for the interpreter,
    which ``json.loads`` obeys and jiter does not)."""
    kind = type(value)
    if kind is int:
        return _LOW < value < INT_LIMIT
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return True
    if around >= MAX_JSON_DEPTH:
        return False
    for item in value:
        kind = type(item)
        if kind is int:
            if not _LOW < item < INT_LIMIT:
                return False
        elif (kind is dict or kind is list) and not _free(item, around + 1):
            return False
    return True


def _texts_only(runs: dict[str, Any]) -> bool:
    """Whether a ``completed_runs``/``failed_runs`` map holds strings only."""
    for text in runs.values():
        if type(text) is not str:
            return False
    return True


def _v2_sound(value: dict[str, Any]) -> bool:
    """Whether ``lem_v2_fields`` would take every field of ``value``."""
    if not V2_FIELDS.issuperset(value):
        return False
    get = value.get
    ident = get("experiment_id")
    phase = value["phase"]
    started = get("started_at")
    pid = get("subprocess_pid")
    return (
        type(ident) is str and _plain_id(ident) is not None
        and type(phase) is str and phase in PHASES
        and type(get("failed", False)) is bool
        and _time(get("last_updated"))
        and (started is None or _time(started))
        and (pid is None or (type(pid) is int and _LOW < pid < INT_LIMIT))
        and type(get("config_hash")) in _TEXT_OR_NULL and type(get("error_message")) in _TEXT_OR_NULL
    )


def _texts(text: str) -> tuple[str, str]:
    try:
        return local_iso(text)
    except (ValueError, DateOutOfRange):
        raise Unsure from None


def naive_text(text: str | None) -> str | None:
    """A checked time as ``list --json`` writes a file's own: naive local time; ``Unsure`` for a
    date that is none (the pattern checks digits, not the calendar)."""
    return None if text is None else _texts(text)[0]


def v2_fields(value: dict[str, Any]) -> dict[str, Any]:
    """What ``scan_read.lem_v2_fields(value, naive_time_text)`` gives for a value ``checked_lem`` passed."""
    get = value.get
    phase = value["phase"]
    failed = get("failed", False)
    return {
        "experiment_id": value["experiment_id"],  # plain: checked_lem checked it
        "status": phase_to_status(phase, failed).value,
        "raw_status": phase + (" (failed)" if failed else ""),
        "legacy_pid": get("subprocess_pid"),
        "started_at": naive_text(get("started_at")),
        "last_updated": naive_text(value["last_updated"]),
        "error_message": get("error_message"),
        "config_hash": get("config_hash"),
    }
