"""Deeply nested and very large JSON: broken entries, fast, and no RecursionError escapes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state import StateStore
from state.detect import MAX_STATE_FILE_BYTES, BrokenStateFile, nested_deeper_than, parse_state
from state.record import BrokenRecord, ExperimentRecord
from tests.hardening.helpers import lem_v1_text, write_lem

DEEP = 100_000
NESTED = {
    "open-arrays": b"[" * DEEP,
    "closed-arrays": b"[" * DEEP + b"]" * DEEP,
    "open-objects": b'{"a":' * DEEP,
    "closed-objects": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "mixed": b'[{"a":' * (DEEP // 2) + b"0" + b"}]" * (DEEP // 2),
    "deep-field": lem_v1_text("deep").replace('"prompt_args": {}', '"prompt_args": ' + "[" * 2000 + "]" * 2000).encode(),
    "deep-field-shallow-enough-for-json": lem_v1_text("d").replace(
        '"prompt_args": {}', '"prompt_args": {"x": ' + "[" * 200 + "]" * 200 + "}").encode(),
}


@pytest.mark.parametrize("name", list(NESTED))
def test_deep_nesting_is_broken_not_recursion(name: str) -> None:
    started = time.perf_counter()
    with pytest.raises(BrokenStateFile) as exc:
        parse_state(NESTED[name])
    assert time.perf_counter() - started < 2.0
    assert "nested deeper" in exc.value.reason or "truncated" in exc.value.reason


def test_deep_files_are_broken_rows_in_a_scan(state_dir: Path) -> None:
    for name, data in NESTED.items():
        (state_dir / f"{name}.json").write_bytes(data)
    write_lem(state_dir, "fine")
    store = StateStore(state_dir, read_only=True)
    started = time.perf_counter()
    store.scan()
    assert time.perf_counter() - started < 5.0
    assert isinstance(store.entries["fine"], ExperimentRecord)
    broken = {k for k, e in store.entries.items() if isinstance(e, BrokenRecord)}
    assert broken == set(NESTED)


def test_file_over_the_size_limit_is_broken_without_being_read(state_dir: Path) -> None:
    big = state_dir / "huge.json"
    text = lem_v1_text("huge")
    pad = MAX_STATE_FILE_BYTES + 1024 - len(text)
    big.write_text(text.replace('"prompt_args": {}', '"prompt_args": {"pad": "' + "x" * pad + '"}'))
    assert big.stat().st_size > MAX_STATE_FILE_BYTES
    store = StateStore(state_dir, read_only=True)
    started = time.perf_counter()
    store.scan()
    assert time.perf_counter() - started < 1.0
    entry = store.entries["huge"]
    assert isinstance(entry, BrokenRecord) and f"larger than {MAX_STATE_FILE_BYTES // 2**20} MiB" in entry.reason
    with pytest.raises(BrokenStateFile):
        parse_state(big.read_bytes())


def test_sparse_file_claiming_a_terabyte_is_broken_fast(state_dir: Path) -> None:
    with open(state_dir / "sparse.json", "wb") as handle:
        handle.truncate(1 << 40)
    store = StateStore(state_dir, read_only=True)
    started = time.perf_counter()
    store.scan()
    assert time.perf_counter() - started < 1.0
    assert "larger than" in store.entries["sparse"].reason


def test_file_just_under_the_limit_still_parses(state_dir: Path) -> None:
    text = lem_v1_text("almost")
    pad = MAX_STATE_FILE_BYTES - len(text) - 64
    (state_dir / "almost.json").write_text(text.replace('"prompt_args": {}', '"prompt_args": {"pad": "' + "x" * pad + '"}'))
    store = StateStore(state_dir, read_only=True)
    store.scan()
    assert isinstance(store.entries["almost"], ExperimentRecord)


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00", "9999-12-31T23:59:59", "0001-01-01T00:00:00+05:00"])
def test_dates_at_the_ends_of_the_calendar_are_broken_rows_not_crashes(state_dir: Path, when: str) -> None:
    """Found by the fuzzer: a year-1 date raised ValueError in the local-time conversion and stopped every scan."""
    write_lem(state_dir, "ancient", last_updated=when, started_at=when)
    write_lem(state_dir, "fine")
    store = StateStore(state_dir, read_only=True)
    store.scan()
    entry = store.entries["ancient"]
    assert isinstance(entry, BrokenRecord) and entry.reason.startswith("date out of range")
    assert isinstance(store.entries["fine"], ExperimentRecord)


def _container_depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_container_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_container_depth(v) for v in value), default=0)
    return 0


_tricky_text = st.text(alphabet='{}[]"\\ab\n\u00e9', max_size=6)
_json_values = st.recursive(
    st.none() | st.integers() | _tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_tricky_text, inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(value=_json_values, limit=st.integers(min_value=0, max_value=8), indent=st.sampled_from([None, 1]),
       ascii_only=st.booleans())
def test_depth_from_bytes_matches_the_decoded_value(value: object, limit: int, indent: int | None,
                                                     ascii_only: bool) -> None:
    """The byte-level depth check agrees with walking the value, whatever the strings hold."""
    data = json.dumps(value, indent=indent, ensure_ascii=ascii_only).encode()
    assert nested_deeper_than(data, limit) == (_container_depth(value) > limit)


def test_depth_limit_boundary() -> None:
    at_limit = lem_v1_text("d").replace('"prompt_args": {}', '"prompt_args": ' + "[" * 63 + "]" * 63).encode()
    over = lem_v1_text("d").replace('"prompt_args": {}', '"prompt_args": ' + "[" * 64 + "]" * 64).encode()
    assert not nested_deeper_than(at_limit) and nested_deeper_than(over)
    with pytest.raises(BrokenStateFile, match="nested deeper than 64"):
        parse_state(over)
