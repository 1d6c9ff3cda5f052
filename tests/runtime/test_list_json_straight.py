"""``list --json``'s straight path (``app.commands._list_json.read_listed``) prints what the row path prints.

For every file, valid, near-valid or hostile, the straight path gives the
same output object (compared as printed JSON text, byte for byte), the same
sort position, or the same error as building the summary row and writing it
with ``record_json``; a whole directory lists identically both ways. The
straight path must also really be taken for the files llenergymeasure writes.
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

import app.commands.list as list_command
from app.cli import main
from app.commands._common import dump_json, item_bytes
from app.commands._list_json import ListedRow, path_prefix, read_listed, record_json
from state import scan_read
from state.local_time import aware, local_iso, local_timestamp, naive_local
from state.record import FileVersion
from tests.hardening.fuzz_strategies import hostile_bytes, near_valid_documents
from tests.state.test_scan_read import _v1, _v2, odd_documents

CI = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None, derandomize=True)
VERSION = FileVersion(7, 1_700_000_000_000_000_000, 100)
PATH = Path("/state/k.json")


def printed(reader: Any, data: bytes) -> tuple[Any, ...]:
    """What ``list --json`` makes of ``data`` through ``reader``: (printed object, sort time) or the error."""
    try:
        entry = reader("k", PATH, VERSION, data)
    except Exception as exc:  # noqa: BLE001 - whatever one raises, the other must raise alike
        return (type(exc).__name__, str(exc))
    if isinstance(entry, ListedRow):
        return (dump_json(entry.json), entry.updated)
    if b"last_updated" not in data:  # the model's default is "now": a different value on each read
        entry = dataclasses.replace(entry, last_updated=None)
    when = entry.last_updated or entry.started_at
    return (dump_json(record_json(entry, None)), when.timestamp() if when else None)


def assert_same(data: bytes) -> tuple[Any, ...]:
    straight = printed(read_listed, data)
    assert straight == printed(scan_read.read_record, data)
    assert_written_alike(data)
    return straight


def assert_written_alike(data: bytes) -> None:
    """What the listing's reader (given its source) keeps of a row is the object, its source named,
    as ``print_json`` would write it: as text where nothing is left to add, else the object."""
    try:
        entry = read_listed("k", PATH, VERSION, data)
        listed = read_listed("k", PATH, VERSION, data, source="src")
    except Exception:  # noqa: BLE001 - raised alike, as assert_same holds
        return
    if not isinstance(entry, ListedRow):
        assert not isinstance(listed, ListedRow)
        return
    completed = {**entry.json, "source": "src", "host": None}
    if entry.status == "running":
        assert listed.json == completed and listed.judged is not None
    else:
        assert listed.json == item_bytes(completed) and listed.judged is None


@CI
@given(st.one_of(_v1, _v2))
def test_what_llenergymeasure_writes_prints_alike_and_goes_straight(doc: dict[str, Any]) -> None:
    data = json.dumps(doc, indent=2).encode()
    assert_same(data)
    entry = read_listed("k", PATH, VERSION, data)
    row = scan_read.read_record("k", PATH, VERSION, data)
    assert isinstance(entry, ListedRow)  # the straight path is taken
    if row.status != "running":
        assert entry.judged is None
    else:  # its verdict is judged from what judge_record reads of a llenergymeasure row: the same
        assert (entry.judged.legacy_pid, entry.judged.started_at, entry.judged.last_updated) == (row.legacy_pid, row.started_at, row.last_updated)
        assert (entry.judged.key, entry.judged.format, entry.judged.owner, entry.judged.workers) == (row.key, row.format, row.owner, row.workers)


@CI
@given(odd_documents())
def test_odd_fields_print_alike(data: bytes) -> None:
    assert_same(data)


@CI
@given(near_valid_documents())
def test_near_valid_documents_print_alike(data: bytes) -> None:
    assert_same(data)


@CI
@given(hostile_bytes)
def test_hostile_bytes_print_alike(data: bytes) -> None:
    assert_same(data)


def _list_json(capsys: pytest.CaptureFixture[str], root: Path) -> str:
    assert main(["list", "--json", "--source", str(root)]) == 0
    return capsys.readouterr().out


def test_a_whole_directory_lists_byte_for_byte_alike(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The hostile corpus (symlinks, FIFOs, study folders, broken files) plus generated valid files, both ways."""
    from tests.hardening.hostile_corpus import build

    corpus = build(tmp_path)
    base = datetime(2025, 3, 1, 12, 0, 0)
    for i, status in enumerate(["completed", "failed", "running", "aggregated", "initialised", "interrupted"] * 3):
        doc = {"experiment_id": f"gen-{i}", "status": status, "config_hash": f"{i % 4:016x}",
               "process_progress": {"0": {"process_index": 0, "status": "completed", "started_at": base.isoformat(),
                                          "completed_at": (base + timedelta(seconds=i, microseconds=i * 7)).isoformat()}},
               "started_at": base.isoformat(), "last_updated": (base + timedelta(minutes=i % 5)).isoformat()}
        (corpus.state / f"gen-{i}.json").write_text(json.dumps(doc, indent=2))
        phase = {"experiment_id": f"v2-{i}", "phase": ["initialising", "measuring", "done"][i % 3], "failed": i % 2 == 0,
                 "last_updated": (base + timedelta(minutes=i % 7)).isoformat()}
        (corpus.state / f"v2-{i}.json").write_text(json.dumps(phase))
    straight = _list_json(capsys, corpus.state)
    monkeypatch.setattr(list_command, "listed_reader", lambda root, source: None)  # every DirectorySource reads rows again
    assert _list_json(capsys, corpus.state) == straight
    rows = json.loads(straight)
    assert len(rows) > 36 and {"broken", "running", "completed"} <= {r["status"] for r in rows}


@pytest.mark.parametrize("zone", ["UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe", "America/St_Johns"])
def test_local_iso_is_the_conversion_both_ways_in_every_zone(zone: str, local_zone: Any) -> None:
    """Across daylight-saving gaps and folds, the per-hour texts and timestamps are what converting each time gives."""
    local_zone(zone)
    start = datetime(2023, 1, 1)
    for step in range(0, 60 * 24 * 366 * 2, 13):  # two years of 13-minute steps, every hour seen
        value = start + timedelta(minutes=step, microseconds=(step % 3) * 250_001 * (step % 2))
        text = value.isoformat() if step % 5 else value.strftime("%Y-%m-%dT%H:%M:%S.%f")  # a zero fraction written out
        converted = aware(datetime.fromisoformat(text))
        assert local_iso(text) == (naive_local(converted).isoformat(), converted.isoformat())
        assert local_timestamp(text) == converted.timestamp()


@pytest.mark.parametrize("root", ["/", ".", "a/b", "/x/y", "./a", "a//b/", "/x/../y"])
def test_the_path_prefix_writes_what_str_of_the_joined_path_writes(root: str) -> None:
    for name in ("k.json", "exp-1.json", "caf\u00e9.json", "\udcff.json"):
        assert path_prefix(Path(root)) + name == str(Path(root) / name)


@CI
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", "e"]), st.sampled_from([0.0, 1.5, -2.0, 1e9])), max_size=12, unique_by=lambda t: t[0]))
def test_rows_are_sorted_newest_first_then_by_key_either_way(rows: list[tuple[str, float]]) -> None:
    """``list``'s two sorts on a directory's straight rows give the order ``_sort_key`` gives."""
    listed = [ListedRow(key, "completed", updated, b"") for key, updated in rows]
    assert list_command._sorted(list(listed)) == sorted(listed, key=list_command._sort_key)
