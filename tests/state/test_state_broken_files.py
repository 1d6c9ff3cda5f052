"""A corpus of bad files: each is a broken row with its own reason, never a crash, never rewritten."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from statekit import (
    dead_pid,
    deadline,
    file_state,
    lem_process,
    lem_text,
    lem_v1,
    lem_v2,
    transition,
    tree_state,
    write_lem,
)

from runtime.actions import execute_cleanup, plan_cleanup, plan_mark_stale
from state import BrokenRecord, ExperimentRecord, ExperimentStatus, StateStore
from state.detect import MAX_STATE_FILE_BYTES
from state.native import SCHEMA
from state.store import BrokenExperimentError, ExperimentNotFound


def v1(**fields) -> bytes:
    return lem_text(lem_v1("broken", **fields)).encode()


def v1_raw(**override) -> bytes:
    raw = lem_v1("broken")
    raw.update(override)
    return json.dumps(raw, indent=2).encode()


def nested(depth: int) -> bytes:
    return b'{"experiment_id": "deep", "prompt_args": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


def native(**fields) -> bytes:
    raw = {"schema": SCHEMA, "experiment_id": "n", "last_updated": "2025-01-01T00:00:00+00:00"}
    raw.update(fields)
    return json.dumps(raw).encode()


@dataclass(frozen=True)
class Bad:
    name: str
    make: Callable[[Path], None]
    reason: str
    exact: bool = False


def content(data: bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(data)

    return make


def sparse(path: Path) -> None:
    with path.open("wb") as handle:
        handle.truncate(MAX_STATE_FILE_BYTES + 1024)


def symlink_outside(path: Path) -> None:
    target = path.parent.parent / "elsewhere.json"
    target.write_text(lem_text(lem_v1("elsewhere")))
    path.symlink_to(target)


def dangling(path: Path) -> None:
    path.symlink_to(path.parent / "missing-target.json")


def loop(path: Path) -> None:
    other = path.parent / "loop-b.link"
    path.symlink_to(other)
    other.symlink_to(path)


def fifo(path: Path) -> None:
    os.mkfifo(path)


def directory(path: Path) -> None:
    path.mkdir()
    (path / "inner.json").write_text(lem_text(lem_v1("inner")))


CORPUS = [
    Bad("truncated", content(v1()[:57]), "truncated JSON (ends at line"),
    Bad("truncated-mid-string", content(b'{"experiment_id": "a", "status": "runn'), "truncated JSON"),
    Bad("invalid", content(b'{"experiment_id": "a",, "status": "running"}'), "invalid JSON at line 1, column 23: Expecting property name"),
    Bad("trailing-garbage", content(v1() + b"\n}{"), "invalid JSON at line 19, column 1: Extra data", exact=True),
    Bad("empty", content(b""), "empty file", exact=True),
    Bad("whitespace", content(b" \n\t\r\n  "), "empty file", exact=True),
    Bad("latin1", content('{"experiment_id": "caf\xe9"}'.encode("latin-1")), "not UTF-8 (byte 0xe9 at offset 22)", exact=True),
    Bad("bom", content(b"\xef\xbb\xbf" + v1()), "Unexpected UTF-8 BOM"),
    Bad("top-array", content(b'[{"experiment_id": "a"}]'), "top level is an array, not an object", exact=True),
    Bad("top-number", content(b"42"), "top level is a number, not an object", exact=True),
    Bad("top-string", content(b'"running"'), "top level is a string, not an object", exact=True),
    Bad("top-null", content(b"null"), "top level is null, not an object", exact=True),
    Bad("top-bool", content(b"true"), "top level is a boolean, not an object", exact=True),
    Bad("id-not-string", content(v1_raw(experiment_id=17)), "wrong type at experiment_id: Input should be a valid string (got 17)", exact=True),
    Bad("cycle-not-int", content(v1(cycle_id="three")), "wrong type at cycle_id: Input should be a valid integer"),
    Bad("procs-not-int", content(v1(num_processes=[2])), "wrong type at num_processes"),
    Bad("pid-float", content(v1(subprocess_pid=12.5)), "wrong type at subprocess_pid"),
    Bad("started-not-date", content(v1(started_at="last tuesday")), "wrong type at started_at"),
    Bad("progress-not-object", content(v1(process_progress=[1, 2])), "wrong type at process_progress"),
    Bad("progress-gpu", content(v1(process_progress={"0": lem_process(0, gpu_id="zero")})), "wrong type at process_progress.0.gpu_id"),
    Bad("progress-key", content(v1(process_progress={"first": lem_process(0)})), "wrong type at process_progress.first.[key]"),
    Bad("runs-not-strings", content(v1(completed_runs={"a": 1})), "wrong type at completed_runs.a"),
    Bad("unknown-status", content(v1(status="paused")), "unknown status 'paused' in status", exact=True),
    Bad("unknown-process-status", content(v1(process_progress={"0": lem_process(0, "sleeping")})), "unknown status 'sleeping' in process_progress.0.status", exact=True),
    Bad("unknown-phase", content(lem_text(lem_v2("v2", phase="warming")).encode()), "unknown phase 'warming'", exact=True),
    Bad("v2-failed-not-bool", content(lem_text(lem_v2("v2", failed="maybe")).encode()), "wrong type at failed"),
    Bad("unknown-schema", content(b'{"schema": "mlflow.run/3", "experiment_id": "a"}'), "unknown schema 'mlflow.run/3'", exact=True),
    Bad("schema-not-string", content(b'{"schema": 1, "experiment_id": "a"}'), "unknown schema 1", exact=True),
    Bad("future-schema", content(native(schema="expwatch.experiment/2")), "schema 'expwatch.experiment/2' is newer than this expwatch understands (expwatch.experiment/1)", exact=True),
    Bad("garbled-schema", content(native(schema="expwatch.experiment/one")), "unknown schema 'expwatch.experiment/one'", exact=True),
    Bad("native-missing-updated", content(json.dumps({"schema": SCHEMA, "experiment_id": "n"}).encode()), "missing required field 'last_updated'", exact=True),
    Bad("native-run-index", content(native(runs=[{"id_run": "r", "index": "first"}])), "wrong type at runs.0.index"),
    Bad("native-extra", content(native(colour="blue")), "unexpected field 'colour'", exact=True),
    Bad("missing-id", content(b'{"status": "running", "cycle_id": 0}'), "not an experiment state file (no experiment_id)", exact=True),
    Bad("extra-field", content(v1_raw(gpu_temperature=71)), "unexpected field 'gpu_temperature'", exact=True),
    Bad("oversized", sparse, f"file larger than {MAX_STATE_FILE_BYTES // 2**20} MiB ({MAX_STATE_FILE_BYTES + 1024} bytes)", exact=True),
    Bad("symlink-outside", symlink_outside, "symlink points outside the state directory", exact=True),
    Bad("dangling-symlink", dangling, "dangling symlink (No such file or directory)", exact=True),
    Bad("symlink-loop", loop, "symlink loop", exact=True),
    Bad("fifo", fifo, "not a regular file (a named pipe)", exact=True),
    Bad("directory", directory, "not a regular file (a directory)", exact=True),
    Bad("unsafe-id-dotdot", content(lem_text(lem_v1("../../etc/passwd")).encode()), "unsafe id: experiment id contains a '..' or '.' path component", exact=True),
    Bad("unsafe-id-absolute", content(lem_text(lem_v1("/etc/passwd")).encode()), "unsafe id: experiment id looks like an absolute path", exact=True),
    Bad("unsafe-id-control", content(lem_text(lem_v1("x\x1b[2Jy")).encode()), "unsafe id: experiment id contains control characters", exact=True),
    Bad("unsafe-id-empty", content(lem_text(lem_v1("")).encode()), "unsafe id: empty experiment id", exact=True),
    Bad("deep", content(nested(100)), "JSON nested deeper than 64 levels", exact=True),
    Bad("very-deep", content(nested(200_000)), "JSON nested deeper than 64 levels", exact=True),
    Bad("nan", content(v1().replace(b'"prompt_args": {}', b'"prompt_args": {"temperature": NaN}')), "non-standard JSON value NaN", exact=True),
    Bad("infinity", content(v1().replace(b'"total_runs": 0', b'"total_runs": Infinity')), "non-standard JSON value Infinity", exact=True),
    Bad("duplicate-key", content(v1().replace(b'"cycle_id": 0', b'"status": "completed", "cycle_id": 0')), "duplicate key 'status'", exact=True),
    Bad("huge-number", content(v1().replace(b'"total_runs": 0', b'"total_runs": ' + b"9" * 5000)), "a JSON number longer than 4300 digits", exact=True),
]


def test_corpus_is_large_and_names_are_unique() -> None:
    assert len(CORPUS) >= 25
    assert len({bad.name for bad in CORPUS}) == len(CORPUS)


def assert_reason(entry: object, bad: Bad) -> None:
    assert isinstance(entry, BrokenRecord), f"{bad.name}: {entry!r}"
    if bad.exact:
        assert entry.reason == bad.reason, bad.name
    else:
        assert bad.reason in entry.reason, (bad.name, entry.reason)


@pytest.fixture
def corpus_dir(state_dir: Path) -> Path:
    for bad in CORPUS:
        bad.make(state_dir / f"{bad.name}.json")
    write_lem(state_dir, lem_v1("good", status="running", subprocess_pid=dead_pid()))
    return state_dir


def test_every_bad_file_is_a_broken_row_with_its_reason(corpus_dir: Path) -> None:
    store = StateStore(corpus_dir, read_only=True)
    with deadline(20):
        delta = store.scan()
    assert sorted(delta.added) == sorted([bad.name for bad in CORPUS] + ["good"])
    for bad in CORPUS:
        assert_reason(store.entries[bad.name], bad)
        assert store.entries[bad.name].status == "broken"
    assert [r.experiment_id for r in store.records()] == ["good"]


@pytest.mark.parametrize("bad", CORPUS, ids=lambda b: b.name)
def test_refresh_of_one_bad_file_gives_the_same_reason(state_dir: Path, bad: Bad) -> None:
    bad.make(state_dir / f"{bad.name}.json")
    store = StateStore(state_dir, read_only=True)
    with deadline(10):
        delta = store.refresh([f"{bad.name}.json"])
    assert delta.added == (bad.name,)
    assert_reason(store.entries[bad.name], bad)


def test_broken_files_are_never_rewritten(corpus_dir: Path) -> None:
    before = {bad.name: file_state(corpus_dir / f"{bad.name}.json") for bad in CORPUS}
    store = StateStore(corpus_dir, durable=False)
    with deadline(30):
        store.scan()
        store.scan()
        for bad in CORPUS:
            name = bad.name
            with pytest.raises((BrokenExperimentError, ExperimentNotFound)):
                store.load(name)
            with pytest.raises((BrokenExperimentError, ExperimentNotFound)):
                plan_mark_stale(store, name)
            with pytest.raises((BrokenExperimentError, ExperimentNotFound)):
                transition(store, name, ExperimentStatus.RUNNING, why="retry")
            with pytest.raises((BrokenExperimentError, ExperimentNotFound)):
                store.update(name, lambda model: model)
        cleaned = execute_cleanup(store, plan_cleanup(store.records()))
        assert [result.experiment_id for result in cleaned.done] == ["good"] and not cleaned.skipped
        store.scan()
    after = {bad.name: file_state(corpus_dir / f"{bad.name}.json") for bad in CORPUS}
    assert after == before
    assert {entry.experiment for entry in store.journal.entries()} == {"good"}


def test_a_fixed_file_recovers_on_rescan(state_dir: Path) -> None:
    path = state_dir / "flaky.json"
    path.write_bytes(v1()[:40])
    store = StateStore(state_dir, read_only=True)
    store.scan()
    assert isinstance(store.entries["flaky"], BrokenRecord)
    path.write_text(lem_text(lem_v1("flaky", status="running")))
    delta = store.scan()
    assert delta.changed == ("flaky",)
    entry = store.entries["flaky"]
    assert isinstance(entry, ExperimentRecord) and entry.status == "running"
    # and breaks again
    path.write_bytes(b"{")
    assert store.refresh(["flaky.json"]).changed == ("flaky",)
    assert store.entries["flaky"].reason.startswith("truncated JSON")


def test_a_fifo_that_appears_between_scan_and_load_does_not_block(state_dir: Path) -> None:
    write_lem(state_dir, lem_v1("swap"))
    store = StateStore(state_dir, read_only=True)
    store.scan()
    (state_dir / "swap.json").unlink()
    os.mkfifo(state_dir / "swap.json")
    with deadline(5), pytest.raises(BrokenExperimentError, match="not a regular file"):
        store.load("swap")


def test_unreadable_file_does_not_crash(state_dir: Path) -> None:
    path = write_lem(state_dir, lem_v1("secret"))
    path.chmod(0)
    try:
        store = StateStore(state_dir, read_only=True)
        store.scan()
        entry = store.entries["secret"]
        if os.geteuid() == 0:  # root reads whatever the mode says
            assert isinstance(entry, ExperimentRecord)
        else:
            assert isinstance(entry, BrokenRecord) and entry.reason == "permission denied"
    finally:
        path.chmod(0o644)


def test_files_that_are_not_experiments_are_skipped_quietly(state_dir: Path) -> None:
    (state_dir / "campaign_manifest.json").write_text(json.dumps({"campaign_id": "c1", "experiments": []}))
    (state_dir / "experiment_id.txt").write_text("exp-1\n")
    (state_dir / "exp-1.tmp").write_text(lem_text(lem_v1("exp-1"))[:30])
    (state_dir / "manifest.json").write_text(json.dumps({"campaign_id": "c2", "experiments": ["a"]}))
    (state_dir / "workcell.json").write_text(
        json.dumps({"schema": "expwatch.devices/1", "workcell": "w", "taken_at": "2025-01-01T00:00:00"})
    )
    (state_dir / ".hidden.json").write_text("{")
    (state_dir / "notes.md").write_text("# notes")
    sidecar = state_dir / ".expwatch"
    (sidecar / "devices").mkdir(parents=True)
    (sidecar / "devices" / "w.json").write_text("{")
    (sidecar / "tmp").mkdir()
    (sidecar / "tmp" / "exp-1.json.abc.tmp").write_text("{")
    (sidecar / "stray.json").write_text("{")

    store = StateStore(state_dir, read_only=True)
    delta = store.scan()
    assert not delta
    assert store.entries == {}
    assert store.refresh(["campaign_manifest.json", "workcell.json", "manifest.json", ".hidden.json"]) == type(delta)()


def test_an_experiment_that_turns_into_a_non_experiment_is_reported_removed(state_dir: Path) -> None:
    path = write_lem(state_dir, lem_v1("morph"))
    store = StateStore(state_dir, read_only=True)
    store.scan()
    path.write_text(json.dumps({"schema": "expwatch.devices/1", "workcell": "w", "taken_at": "2025-01-01T00:00:00"}))
    delta = store.scan()
    assert delta.removed == ("morph",)
    assert "morph" not in store.entries
    assert not store.scan()
    path.write_text(lem_text(lem_v1("morph")))
    assert store.refresh(["morph.json"]).added == ("morph",)
    path.write_text(json.dumps({"campaign_id": "x"}))
    assert store.refresh(["morph.json"]).removed == ("morph",)


def test_scan_of_corpus_never_writes(corpus_dir: Path) -> None:
    before = tree_state(corpus_dir)
    store = StateStore(corpus_dir, read_only=True)
    with deadline(20):
        store.scan()
        store.records()
        store.find_incomplete()
    assert tree_state(corpus_dir) == before


def test_started_at_in_the_future_is_not_broken(state_dir: Path) -> None:
    write_lem(state_dir, lem_v1("future", started_at=datetime(2099, 1, 1)))
    store = StateStore(state_dir, read_only=True)
    store.scan()
    assert isinstance(store.entries["future"], ExperimentRecord)
