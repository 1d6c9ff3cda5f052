"""``run.shared`` end to end with real runner processes, and ``expwatch kv`` reading what it stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.runner.shared import LocalTable, SharedMap, SharedValueError
from state.native import RunStatus
from state.shared import SharedStateError, read_shared, shared_path
from state.transitions import ExperimentStatus

from tests.runtime.helpers import expwatch, read_doc, write_study

#: Run 0 publishes a sample id and waits until some other run has checked in (which, with run 0's
#: worker busy waiting, can only be a run of the other worker); the others wait for the id, read it
#: and check in. Eight workers counting 1,000 times each through ``incr`` lose no update.
TWO_WORKERS_STUDY = '''\
import os, time

def publish(run):
    if run.index == 0:
        run.shared["sample_id"] = "s123"
        run.shared.writer_pid = os.getpid()
        deadline = time.monotonic() + 30
        while run.shared.get("checked_in", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.005)

def read(run):
    if run.index != 0:
        deadline = time.monotonic() + 30
        while "sample_id" not in run.shared and time.monotonic() < deadline:
            time.sleep(0.005)
        run.fields.seen = run.shared.sample_id
        run.fields.seen_writer = run.shared["writer_pid"]
        run.shared.incr("checked_in")
    run.fields.pid = os.getpid()
    run.shared[f"run_{run.index}"] = {"pid": os.getpid(), "params": dict(run.params)}

steps = [publish, read]
grid = {"i": range(4)}
'''

COUNTING_STUDY = '''\
def count(run):
    for _ in range(1000):
        run.shared.incr("hits")

steps = [count]
grid = {"i": range(8)}
'''

NON_JSON_STUDY = '''\
def store(run):
    run.shared.ok = [1, "two", None]
    if run.params.i == 1:
        run.shared["bad"] = {"when": {1, 2}}
    run.fields.stored = True

steps = [store]
grid = {"i": range(3)}
'''


def test_two_workers_share_keys_and_kv_reads_them(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, TWO_WORKERS_STUDY)
    done = expwatch("run", study, "--state-dir", state_dir, "--id", "shared", "-p", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    doc = read_doc(state_dir, "shared")
    assert doc is not None and doc.status is ExperimentStatus.COMPLETED
    readers = doc.runs[1:]
    writer_pid = doc.runs[0].fields["pid"]
    assert all(r.fields["seen"] == "s123" and r.fields["seen_writer"] == writer_pid for r in readers)
    assert any(r.fields["pid"] != writer_pid for r in readers)  # another worker read the writer's keys

    stored = read_shared(state_dir, "shared", "shared")
    assert stored["sample_id"] == "s123" and stored["checked_in"] == 3
    assert stored["run_2"] == {"pid": doc.runs[2].fields["pid"], "params": {"i": 2}}

    listing = expwatch("kv", "shared", "--state-dir", state_dir)
    assert listing.returncode == 0, listing.stderr
    assert "sample_id   s123" in listing.stdout.splitlines()
    assert "checked_in  3" in listing.stdout.splitlines()
    as_json = expwatch("kv", "shared", "--json", "--state-dir", state_dir)
    assert json.loads(as_json.stdout) == stored
    one = expwatch("kv", "shared", "sample_id", "--state-dir", state_dir)
    assert one.stdout == "s123\n"
    assert json.loads(expwatch("kv", "shared", "run_1", "--json", "--state-dir", state_dir).stdout)["params"] == {"i": 1}
    missing = expwatch("kv", "shared", "nope", "--state-dir", state_dir)
    assert missing.returncode == 3
    assert "shared has no shared key 'nope' (keys: checked_in, run_0" in missing.stderr


def test_eight_workers_counting_lose_no_update(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, COUNTING_STUDY)
    done = expwatch("run", study, "--state-dir", state_dir, "--id", "count", "-p", "8", cwd=tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    assert read_shared(state_dir, "count", "count") == {"hits": 8000}


def test_a_non_json_value_fails_its_run_saying_why(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, NON_JSON_STUDY)
    done = expwatch("run", study, "--state-dir", state_dir, "--id", "nonjson", cwd=tmp_path)
    assert done.returncode == 1
    doc = read_doc(state_dir, "nonjson")
    assert doc is not None
    assert [r.status for r in doc.runs] == [RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.COMPLETED]
    error = doc.runs[1].exception
    assert error is not None and error.type == "SharedValueError"
    assert error.message.startswith("run.shared['bad']['when'] is a set, not a JSON value")
    assert doc.runs[1].current_step == "store"
    assert read_shared(state_dir, "nonjson", "nonjson") == {"ok": [1, "two", None]}


def test_kv_of_an_experiment_without_shared_state(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path)
    assert expwatch("run", study, "--state-dir", state_dir, "--id", "plain", cwd=tmp_path).returncode == 0
    shown = expwatch("kv", "plain", "--state-dir", state_dir)
    assert shown.returncode == 0 and shown.stdout == "plain: no shared run state\n"
    assert expwatch("kv", "plain", "--json", "--state-dir", state_dir).stdout == "{}\n"


def test_kv_json_escapes_what_a_terminal_would_act_on(tmp_path: Path, state_dir: Path):
    """--json is exact JSON and plain ASCII: C1 controls and bidi marks arrive escaped, never raw."""
    study = write_study(tmp_path, COUNTING_STUDY.replace("range(8)", "range(1)"))
    assert expwatch("run", study, "--state-dir", state_dir, "--id", "esc", cwd=tmp_path).returncode == 0
    path = shared_path(state_dir, "esc")
    hostile = "a\x9b31mb\u202ec\x1b[2Jd"
    path.write_text(json.dumps({"shared": 1, "experiment_id": "esc", "values": {"k": hostile}}))
    whole = expwatch("kv", "esc", "--json", "--state-dir", state_dir)
    one = expwatch("kv", "esc", "k", "--json", "--state-dir", state_dir)
    for out in (whole, one):
        assert out.returncode == 0, out.stderr
        assert out.stdout.isascii()
    assert json.loads(whole.stdout) == {"k": hostile} and json.loads(one.stdout) == hostile


def test_a_damaged_or_foreign_shared_file_is_refused(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, COUNTING_STUDY.replace("range(8)", "range(1)"))
    assert expwatch("run", study, "--state-dir", state_dir, "--id", "hurt", cwd=tmp_path).returncode == 0
    path = shared_path(state_dir, "hurt")
    path.write_text('{"shared": 1, "experiment_id": "hurt", "values": [')
    shown = expwatch("kv", "hurt", "--state-dir", state_dir)
    assert shown.returncode == 1 and "hurt.json: not valid JSON" in shown.stderr
    path.write_text('{"shared": 1, "experiment_id": "other", "values": {}}')
    with pytest.raises(SharedStateError, match="written for experiment 'other', not 'hurt'"):
        read_shared(state_dir, "hurt", "hurt")
    path.write_text('{"shared": 1, "experiment_id": "hurt", "values": {"big": 1e999}}')
    shown = expwatch("kv", "hurt", "--json", "--state-dir", state_dir)
    assert (shown.returncode, shown.stdout) == (1, "")
    assert "not valid JSON (1e999 is out of a float's range)" in shown.stderr


def test_the_map_outside_a_runner():
    """A run made by hand (a unit test of a step) gets a private map with the same rules."""
    shared = SharedMap()
    shared.sample_id = "s1"
    assert shared["sample_id"] == "s1" and "sample_id" in shared and shared.get("nope", 7) == 7
    assert shared.incr("n") == 1 and shared.incr("n", 2.5) == 3.5
    del shared.sample_id
    assert shared.to_dict() == {"n": 3.5}
    with pytest.raises(AttributeError, match="no key 'sample_id'"):
        _ = shared.sample_id
    with pytest.raises(SharedValueError, match=r"run.shared\['x'\]\[0\] is nan"):
        shared["x"] = [float("nan")]
    with pytest.raises(SharedValueError, match="has the key 1, not a string"):
        shared["x"] = {1: "a"}
    with pytest.raises(SharedValueError, match="is a tuple, not a JSON value"):
        shared["x"] = (1, 2)


def test_the_table_refuses_what_a_worker_should_not_send():
    table = LocalTable({"s": "text"}, limit=64)
    assert "not a number" in table.apply({"op": "incr", "k": "s", "v": 1})["error"]
    assert table.apply({"op": "set", "k": "k", "v": [1]}) == {"v": [1], "found": True}
    assert "lone surrogate" in table.apply({"op": "set", "k": "k", "v": "x\udcff"})["error"]
    assert "limit" in table.apply({"op": "set", "k": "big", "v": "x" * 100})["error"]
    assert table.apply({"op": "drop"})["error"] == "unknown operation 'drop'"
    assert table.values == {"s": "text", "k": [1]}


def test_the_inspector_overview_shows_the_shared_map(tmp_path: Path, state_dir: Path):
    from datetime import datetime

    from app.screens.inspector.overview import overview_sections
    from state.inspection import read_snapshot
    from state.inspection.extras import ExtrasReader
    from state.store import StateStore

    study = write_study(tmp_path, NON_JSON_STUDY.replace("range(3)", "range(1)"))
    assert expwatch("run", study, "--state-dir", state_dir, "--id", "seen", cwd=tmp_path).returncode == 0
    store = StateStore(state_dir, read_only=True)
    snap = read_snapshot(store, "seen")
    extras = ExtrasReader(store, None, None).read(snap)
    assert extras.shared == (("ok", [1, "two", None]),) and extras.shared_error is None
    sections = overview_sections(snap, extras, now=datetime.now().astimezone(), base=tmp_path, has_verdict=False)
    shared = next(s for s in sections if s.title == "Shared run state (run.shared)")
    assert shared.rows == (("ok", '[1,"two",null]'),)

    shared_path(state_dir, "seen").write_text("[")
    broken = ExtrasReader(store, None, None).read(snap)
    assert broken.shared == () and "seen.json: not valid JSON" in (broken.shared_error or "")
