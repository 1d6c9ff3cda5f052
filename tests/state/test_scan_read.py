"""The scan's light reader (``state.scan_read``) and the full validation (``state.detect``) agree.

On every file, valid or hostile, both give the same row (the same values, the
same offsets and zone names on every time) or the same broken reason. The
light path must also really be taken for the files llenergymeasure writes,
or these tests would only compare the full path with itself.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state import detect, scan_read
from state.decoding import decode_json
from state.local_time import aware, naive_local, shared_tz
from state.record import FileVersion
from tests.hardening.fuzz_strategies import hostile_bytes, json_values, near_valid_documents

CI = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None, derandomize=True)
VERSION = FileVersion(7, 1_700_000_000_000_000_000, 100)


def _times(value: Any) -> list[tuple[str, str | None, Any, int]]:
    """Every datetime in a record or its process rows, with what equality does not compare."""
    found = []
    for item in (value, *value.processes):
        for f in dataclasses.fields(item):
            v = getattr(item, f.name)
            if isinstance(v, datetime):
                found.append((v.isoformat(), v.tzname(), v.utcoffset(), v.fold))
    return found


def outcome(reader: Any, data: bytes) -> tuple[Any, ...]:
    try:
        record = reader("k", Path("k.json"), VERSION, data)
    except Exception as exc:  # noqa: BLE001 - whatever one raises, the other must raise alike
        return (type(exc).__name__, str(exc))
    if b"last_updated" not in data:  # the model's default is "now": a different value on each read
        record = dataclasses.replace(record, last_updated=None)
    return ("record", record, _times(record))


def assert_agree(data: bytes) -> tuple[Any, ...]:
    light = outcome(scan_read.read_record, data)
    assert light == outcome(detect.read_record, data)
    return light


# -- files as llenergymeasure writes them, and each field made odd one at a time --------------------
_naive_times = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)).map(datetime.isoformat)
_opt_str = st.none() | st.text(max_size=12)
_process = st.fixed_dictionaries({
    "process_index": st.integers(0, 8),
    "status": st.sampled_from(["pending", "running", "completed", "failed"]),
    "gpu_id": st.none() | st.integers(0, 8),
    "started_at": st.none() | _naive_times,
    "completed_at": st.none() | _naive_times,
    "error_message": _opt_str,
})
_v1 = st.fixed_dictionaries({
    "experiment_id": st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True).filter(lambda s: s not in (".", "..")),
    "status": st.sampled_from(["initialised", "running", "completed", "aggregated", "failed", "interrupted"]),
    "cycle_id": st.integers(0, 5),
    "config_path": _opt_str,
    "config_hash": st.none() | st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
    "model_name": _opt_str,
    "prompt_args": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    "num_processes": st.integers(1, 8),
    "subprocess_pid": st.none() | st.integers(1, 2**22),
    "process_progress": st.lists(_process, max_size=4).map(lambda ps: {str(i): p for i, p in enumerate(ps)}),
    "started_at": st.none() | _naive_times,
    "last_updated": _naive_times,
    "error_message": _opt_str,
    "completed_runs": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    "failed_runs": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    "total_runs": st.integers(0, 1000),
})
_v2 = st.fixed_dictionaries({
    "experiment_id": st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True),
    "phase": st.sampled_from(["initialising", "measuring", "done"]),
    "failed": st.booleans(),
    "config_hash": _opt_str,
    "error_message": _opt_str,
    "started_at": st.none() | _naive_times,
    "last_updated": _naive_times,
    "subprocess_pid": st.none() | st.integers(1, 2**22),
})
#: Values that a lax validator may read differently from a strict one: the light path must defer on each.
ODD_VALUES = [
    True, False, 1.0, 1.5, "1", "01", " 1", "", 2**63, 2**64, -(2**63), -1, 0, None, [], {}, {"a": 1},
    "2025-03-01 12:00:00", "2025-03-01T12:00:00Z", "2025-03-01T12:00:00+02:00", "2025-03-01T12:00:00.123",
    "2025-03-01T24:00:00", "2025-02-29T12:00:00", "0001-01-01T00:00:00", "9999-12-31T23:59:59",
    "2025-03-01T12:00:00.000000", "2025-03-01", 1_700_000_000, "interrupted", "pending", "done", "RUNNING",
    "../x", "a/b", "\x00", "x" * 300, "é", "\ud800", "2025-03-01T12:00:00\x002025-03-01T12:00:01",
]
ODD = st.sampled_from(ODD_VALUES)


@st.composite
def odd_documents(draw: st.DrawFn) -> bytes:
    doc = draw(_v1 | _v2)
    for _ in range(draw(st.integers(0, 2))):
        where = draw(st.sampled_from(["top", "process", "process key", "extra", "drop"]))
        progress = doc.get("process_progress")
        if where == "top":
            doc[draw(st.sampled_from(sorted(doc)))] = draw(ODD)
        elif where == "process" and isinstance(progress, dict) and progress:
            entry = progress[draw(st.sampled_from(sorted(progress)))]
            if isinstance(entry, dict):
                entry[draw(st.sampled_from([*sorted(entry), "extra"]))] = draw(ODD)
        elif where == "process key" and isinstance(progress, dict) and progress:
            progress[draw(st.sampled_from(["01", "+1", " 1", "1_0", "-1", "x", "99999999999999999999"]))] = progress.popitem()[1]
        elif where == "extra":
            doc[draw(st.sampled_from(["schema", "phase", "runs", "extra", "experiments"]))] = draw(ODD)
        elif doc:
            doc.pop(draw(st.sampled_from(sorted(doc))))
    return json.dumps(doc, indent=draw(st.sampled_from([None, 2]))).encode("utf-8", "surrogatepass")


@CI
@given(st.one_of(_v1, _v2))
def test_the_light_path_reads_what_llenergymeasure_writes(doc: dict[str, Any]) -> None:
    data = json.dumps(doc, indent=2).encode()
    value = decode_json(data)
    light = scan_read.lem_v1_record if "status" in doc else scan_read.lem_v2_record
    record = light("k", Path("k.json"), VERSION, value)  # raises if it would defer
    assert assert_agree(data) == ("record", record, _times(record))


@CI
@given(odd_documents())
def test_odd_fields_give_the_same_row_or_reason(data: bytes) -> None:
    assert_agree(data)


@CI
@given(near_valid_documents())
def test_near_valid_documents_agree(data: bytes) -> None:
    assert_agree(data)


@CI
@given(hostile_bytes)
def test_hostile_bytes_agree(data: bytes) -> None:
    assert_agree(data)


def test_the_hostile_corpus_reads_alike(tmp_path: Path) -> None:
    from tests.hardening.hostile_corpus import build

    corpus = build(tmp_path)
    files = [p for p in corpus.state.rglob("*.json") if p.is_file() and not p.is_symlink() and p.stat().st_size < 2**20]
    kinds = {assert_agree(p.read_bytes())[0] for p in files}
    assert "record" in kinds and "BrokenStateFile" in kinds


# -- the pieces the light path stands on --------------------------------------------------------------
@pytest.mark.parametrize("zone", ["UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe", "America/St_Johns"])
def test_aware_is_astimezone_in_every_zone(zone: str, local_zone: Any) -> None:
    """Across daylight-saving gaps and folds, the hour cache gives what ``astimezone()`` gives, both ways."""
    local_zone(zone)
    start = datetime(1970, 1, 1)
    for step in range(0, 60 * 24 * 366 * 3, 7):  # three years of 7-minute steps, every hour seen
        for value in (start + timedelta(minutes=step), (start + timedelta(minutes=step)).replace(fold=1)):
            got, want = aware(value), shared_tz(value.astimezone())
            assert (got, got.isoformat(), got.tzname(), got.fold) == (want, want.isoformat(), want.tzname(), want.fold)
            back, want_back = naive_local(got), got.astimezone().replace(tzinfo=None)
            assert (back, back.fold) == (want_back, want_back.fold)
