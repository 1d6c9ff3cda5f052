"""llenergymeasure v1 and v2 files checked from their bytes in one pydantic-core call, for ``list --json``.

A cold ``list --json`` over 10,000 files spent 10.6 µs a file decoding (``json.loads``
calling a Python hook per object to refuse duplicate keys) and 8.4 µs checking fields
by hand (``state.scan_read``), against 5 µs for a bare ``json.loads``. Here a
pydantic-core validator parses and checks the bytes in Rust, by the same rules as
``scan_read.lem_v1_fields`` and ``lem_v2_fields``: the same fields, types, statuses,
time spellings and integer range, nothing else. Its JSON parser differs from
``json.loads`` in a few places, so this path takes only bytes where the two agree
and the rest goes back to ``decode_json``, which also words the broken reason:

- ASCII with no ``\\u`` escape (no surrogate or UTF-8 question); no ``NaN`` or
  infinity (jiter reads ``NaN`` and ``Infinity``) and nesting within ``MAX_JSON_DEPTH``,
  checked on the value: only the prompt arguments (and unknown process fields) are free-form;
- no key named twice. jiter keeps the last value, as ``json.loads`` does without
  the hook; the text tells instead. Each colon in it follows a key or lies in a
  string, so it holds as many colons as its keys and its strings' colons together,
  and the value says how many of both it holds (two colons in each time: its
  pattern allows no other). A key named twice leaves its first pair out of the
  value, with at least that pair's own colon: the counts differ. (An escaped colon,
  ``\\u003a``, would count in the value and not in the text: such files go the
  usual way.) The counts cost about 3 µs a file against the hook's 5.

tests/runtime/test_list_json_straight.py holds this path, the hand-checked one and
the full validation to the same output over generated, near-valid and hostile files.
The dashboard's row reader keeps the hand checks: it draws its first rows before
pydantic-core (30 ms to import) would have loaded.
"""

from __future__ import annotations

from typing import Any

from state.decoding import MAX_JSON_DEPTH, MAX_STATE_FILE_BYTES
from state.local_time import DateOutOfRange, local_iso
from state.record import StateFormat
from state.scan_read import (
    INDEX_KEY_PATTERN,
    ISO_TIME_PATTERN,
    PHASES,
    PROCESS_STATUSES,
    PLAIN_ID_PATTERN,
    STATUSES,
    Unsure,
)
from state.transitions import phase_to_status

_validators: tuple[Any, Any] | None = None
_PROCESS_FIELDS = frozenset({"process_index", "status", "gpu_id", "started_at", "completed_at", "error_message"})


def checked_lem(data: bytes) -> tuple[StateFormat, dict[str, Any]] | None:
    """(format, value) of a llenergymeasure v1 or v2 file every field of which checks out, with the
    fields it leaves out absent; None for anything else, which the usual decoding then reads."""
    if len(data) > MAX_STATE_FILE_BYTES or not data.isascii() or (b"\\" in data and b"\\u" in data):
        return None
    v1, v2 = _validators or _build()
    v2_file = data.find(b'"phase"', 0, 512) >= 0  # where llenergymeasure writes it; later, v1 refuses it
    try:
        value = (v2 if v2_file else v1).validate_json(data)
        keys, times, text_colons = _v2_tally(value) if v2_file else _v1_tally(value)
    except (ValueError, Unsure):
        return None
    if data.count(b":") != keys + 2 * times + text_colons:
        return None  # a key named twice: the usual decoding says which
    return (StateFormat.LEM_V2 if v2_file else StateFormat.LEM_V1), value


def _free(value: Any, depth: int) -> tuple[int, int]:
    """(keys, colons inside strings) of a free-form value (a prompt argument), at every depth.

    ``Unsure`` for NaN or an infinity (jiter reads ``NaN`` and ``Infinity``, which
    ``decode_json`` refuses) and for nesting that may pass ``MAX_JSON_DEPTH`` (``depth``:
    the containers around it).
    """
    kind = type(value)
    if kind is str:
        return 0, value.count(":")
    if kind is float:
        if value - value != 0.0:
            raise Unsure
        return 0, 0
    if kind is not dict and kind is not list:
        return 0, 0
    if depth >= MAX_JSON_DEPTH:
        raise Unsure
    keys = colons = 0
    if kind is dict:
        keys = len(value)
        colons = "".join(value).count(":")
        value = value.values()
    for item in value:
        if type(item) is str:
            colons += item.count(":")
        else:
            k, c = _free(item, depth + 1)
            keys += k
            colons += c
    return keys, colons


def _v1_tally(value: dict[str, Any]) -> tuple[int, int, int]:
    """(keys at every depth, times, colons inside strings other than times) of a checked v1 file.

    Free text is counted through one f-string: ``None`` writes as ``None``, with no colon."""
    get = value.get
    keys = len(value)
    colons = f"{get('config_path')}{get('config_hash')}{get('model_name')}{get('error_message')}".count(":")
    for runs in (get("completed_runs"), get("failed_runs")):
        if runs:
            keys += len(runs)
            colons += ("".join(runs) + "".join(runs.values())).count(":")
    prompt_args = get("prompt_args")
    if prompt_args:
        k, c = _free(prompt_args, 1)
        keys += k
        colons += c
    times = 1 if get("started_at") is None else 2
    progress = get("process_progress")
    if progress:
        keys += len(progress)
        for entry in progress.values():
            keys += len(entry)
            times += (entry.get("started_at") is not None) + (entry.get("completed_at") is not None)
            error = entry.get("error_message")
            if error:
                colons += error.count(":")
            if not entry.keys() <= _PROCESS_FIELDS:
                for extra in entry.keys() - _PROCESS_FIELDS:
                    k, c = _free(entry[extra], 3)
                    keys += k
                    colons += c + extra.count(":")
    return keys, times, colons


def _v2_tally(value: dict[str, Any]) -> tuple[int, int, int]:
    get = value.get
    return len(value), 1 if get("started_at") is None else 2, f"{get('config_hash')}{get('error_message')}".count(":")


def _build() -> tuple[Any, Any]:
    """The two validators, built on first use (pydantic-core loads with them)."""
    global _validators
    from pydantic_core import SchemaValidator
    from pydantic_core import core_schema as cs

    def field(schema: Any, required: bool = False) -> Any:
        return cs.typed_dict_field(schema, required=required)

    def nullable(schema: Any) -> Any:
        return field(cs.nullable_schema(schema))

    text = cs.str_schema(strict=True)
    # An id that is not plain goes the usual way, where unsafe_id_reason judges it.
    plain_id = cs.str_schema(strict=True, pattern=f"^(?:{PLAIN_ID_PATTERN})$")
    whole = cs.int_schema(strict=True, ge=-(2**63) + 1, le=2**63 - 1)  # scan_read._int's range
    when = cs.str_schema(strict=True, pattern=f"^(?:{ISO_TIME_PATTERN})$")
    string_map = field(cs.dict_schema(text, text, strict=True))
    process = cs.typed_dict_schema(
        {
            "process_index": field(whole, required=True),
            "status": field(cs.literal_schema(sorted(PROCESS_STATUSES))),
            "gpu_id": nullable(whole),
            "started_at": nullable(when),
            "completed_at": nullable(when),
            "error_message": nullable(text),
        },
        extra_behavior="allow",  # the model ignores fields it does not know in a process entry
        strict=True,
    )
    v1 = cs.typed_dict_schema(
        {
            "experiment_id": field(plain_id, required=True),
            "status": field(cs.literal_schema(sorted(STATUSES))),
            "cycle_id": field(whole),
            "config_path": nullable(text),
            "config_hash": nullable(text),
            "model_name": nullable(text),
            "prompt_args": field(cs.dict_schema(text, cs.any_schema(), strict=True)),
            "num_processes": field(whole),
            "subprocess_pid": nullable(whole),
            "process_progress": field(cs.dict_schema(cs.str_schema(pattern=f"^(?:{INDEX_KEY_PATTERN})$"), process, strict=True)),
            "started_at": nullable(when),
            "last_updated": field(when, required=True),
            "error_message": nullable(text),
            "completed_runs": string_map,
            "failed_runs": string_map,
            "total_runs": field(whole),
        },
        extra_behavior="forbid",
        strict=True,
    )
    v2 = cs.typed_dict_schema(
        {
            "experiment_id": field(plain_id, required=True),
            "phase": field(cs.literal_schema(sorted(PHASES)), required=True),
            "failed": field(cs.bool_schema(strict=True)),
            "config_hash": nullable(text),
            "error_message": nullable(text),
            "started_at": nullable(when),
            "last_updated": field(when, required=True),
            "subprocess_pid": nullable(whole),
        },
        extra_behavior="forbid",
        strict=True,
    )
    _validators = SchemaValidator(v1), SchemaValidator(v2)
    return _validators


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
        "experiment_id": value["experiment_id"],  # plain: the validator checked it
        "status": phase_to_status(phase, failed).value,
        "raw_status": phase + (" (failed)" if failed else ""),
        "legacy_pid": get("subprocess_pid"),
        "started_at": naive_text(get("started_at")),
        "last_updated": naive_text(value["last_updated"]),
        "error_message": get("error_message"),
        "config_hash": get("config_hash"),
    }
