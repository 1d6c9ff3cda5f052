"""Marking stale experiments with real processes: llenergymeasure's rule, and ours on top.

The writes go through ``runtime.actions`` (the store keeps no action of its own).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from statekit import LEM_V1_FIELDS, LEM_V2_FIELDS, NAIVE_ISO, dead_pid, lem_process, lem_v1, lem_v2, write_lem

from runtime.actions import (
    ActionRefused,
    execute_cleanup,
    execute_mark_stale,
    mark_stale_experiment,
    plan_cleanup,
    plan_mark_stale,
)
from runtime.liveness import host_facts, identity_of, probe
from state import STALE_MESSAGE, ExperimentStatus, Liveness, StateStore, StoreError, judge_record
from state.lem import LemExperimentState, LemV2ExperimentState
from state.native import ExperimentDoc
from state.verdict import StaleVerdict


def verdict_for(store: StateStore, key: str) -> StaleVerdict:
    store.scan()
    return judge_record(store.entries[key], here=host_facts(), probe=probe, now=datetime.now().astimezone())


def cleanup(store: StateStore) -> list[str]:
    """The dashboard's clean-up: plan over the records it holds, then execute."""
    store.scan()
    result = execute_cleanup(store, plan_cleanup(store.records()))
    assert not result.skipped
    return [done.experiment_id for done in result.done]


@pytest.fixture
def sleeper():
    """A live child process (blocked on a pipe) that exits when the test ends."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(write_fd)
        try:
            os.read(read_fd, 1)
        finally:
            os._exit(0)
    os.close(read_fd)
    yield pid
    os.close(write_fd)
    os.waitpid(pid, 0)


def running_v1(experiment_id: str, pid: int | None, started_at: datetime) -> dict:
    return lem_v1(
        experiment_id,
        status="running",
        subprocess_pid=pid,
        num_processes=2,
        process_progress={"0": lem_process(0, "completed", gpu_id=0), "1": lem_process(1, "running", gpu_id=1)},
        started_at=started_at,
    )


def test_running_v1_with_dead_pid_is_marked_interrupted(state_dir: Path) -> None:
    raw = running_v1("exp-dead", dead_pid(), datetime.now() - timedelta(minutes=1))
    path = write_lem(state_dir, raw)
    store = StateStore(state_dir, durable=False)

    verdict = verdict_for(store, "exp-dead")
    assert verdict.liveness is Liveness.DEAD, verdict.reason
    plan = plan_mark_stale(store, "exp-dead")
    assert plan.verdict == verdict and plan.allowed
    execute_mark_stale(store, plan)

    text = path.read_text()
    after = json.loads(text)
    assert after["status"] == "interrupted"
    assert after["error_message"] == "Subprocess no longer running (stale state detected)" == STALE_MESSAGE
    assert list(after) == list(LEM_V1_FIELDS)
    assert NAIVE_ISO.match(after["last_updated"])
    unchanged = {k for k in LEM_V1_FIELDS if k not in ("status", "error_message", "last_updated")}
    assert {k: after[k] for k in unchanged} == {k: raw[k] for k in unchanged}
    LemExperimentState.model_validate_json(text)

    (entry,) = store.journal.entries("exp-dead")
    assert (entry.action, entry.from_status, entry.to_status) == ("mark-stale", "running", "interrupted")
    assert entry.reason == verdict.reason


def test_cleanup_stale_marks_only_dead_running_experiments(state_dir: Path, sleeper: int) -> None:
    an_hour_ago = datetime.now() - timedelta(hours=1)
    write_lem(state_dir, running_v1("dead", dead_pid(), an_hour_ago))
    # The test process started before "now", so it is a plausible live owner.
    write_lem(state_dir, running_v1("alive", os.getpid(), datetime.now() + timedelta(seconds=5)))
    write_lem(state_dir, running_v1("reused", sleeper, an_hour_ago))
    write_lem(state_dir, running_v1("no-pid", None, an_hour_ago))
    write_lem(state_dir, lem_v1("done", status="completed", subprocess_pid=dead_pid()))
    write_lem(state_dir, lem_v2("v2-dead", phase="measuring", subprocess_pid=dead_pid(), started_at=an_hour_ago))
    untouched = {name: (state_dir / f"{name}.json").read_bytes() for name in ("alive", "no-pid", "done")}

    store = StateStore(state_dir, durable=False)
    cleaned = cleanup(store)

    assert sorted(cleaned) == ["dead", "reused", "v2-dead"]
    for name, data in untouched.items():
        assert (state_dir / f"{name}.json").read_bytes() == data
    for name in ("dead", "reused"):
        after = LemExperimentState.model_validate_json((state_dir / f"{name}.json").read_text())
        assert after.status is ExperimentStatus.INTERRUPTED
        assert after.error_message == STALE_MESSAGE
    v2 = LemV2ExperimentState.model_validate_json((state_dir / "v2-dead.json").read_text())
    assert (v2.phase.value, v2.failed, v2.error_message) == ("measuring", True, STALE_MESSAGE)
    assert sorted(e.experiment for e in store.journal.entries()) == ["dead", "reused", "v2-dead"]
    assert cleanup(store) == []


def test_live_pid_started_after_the_experiment_is_judged_dead(state_dir: Path, sleeper: int) -> None:
    write_lem(state_dir, running_v1("reuse", sleeper, datetime.now() - timedelta(minutes=10)))
    store = StateStore(state_dir, durable=False)
    verdict = verdict_for(store, "reuse")
    assert verdict.liveness is Liveness.DEAD
    assert "PID reused" in verdict.reason


def test_live_pid_started_before_the_experiment_is_alive_and_not_marked(state_dir: Path, sleeper: int) -> None:
    path = write_lem(state_dir, running_v1("live", sleeper, datetime.now() + timedelta(seconds=2)))
    data = path.read_bytes()
    store = StateStore(state_dir, durable=False)
    verdict = verdict_for(store, "live")
    assert verdict.is_alive, verdict.reason
    with pytest.raises(StoreError, match="refusing to mark live stale: the owner is alive"):
        mark_stale_experiment(store, "live")
    assert path.read_bytes() == data
    assert list(store.journal.entries()) == []


def test_v2_stale_mark_sets_failed_with_the_same_message(state_dir: Path) -> None:
    raw = lem_v2("v2", phase="measuring", subprocess_pid=dead_pid(), started_at=datetime.now() - timedelta(minutes=3))
    path = write_lem(state_dir, raw)
    store = StateStore(state_dir, durable=False)
    verdict = verdict_for(store, "v2")
    assert verdict.is_dead
    mark_stale_experiment(store, "v2")
    after = json.loads(path.read_text())
    assert list(after) == list(LEM_V2_FIELDS)
    assert (after["phase"], after["failed"], after["error_message"]) == ("measuring", True, STALE_MESSAGE)
    LemV2ExperimentState.model_validate_json(path.read_text())
    (entry,) = store.journal.entries()
    assert (entry.from_status, entry.to_status) == ("running", "failed")


@pytest.mark.parametrize("status", ["initialised", "completed", "aggregated", "failed", "interrupted"])
def test_mark_stale_refuses_experiments_that_are_not_running(state_dir: Path, status: str) -> None:
    path = write_lem(state_dir, lem_v1("x", status=status, subprocess_pid=dead_pid()))
    data = path.read_bytes()
    store = StateStore(state_dir, durable=False)
    with pytest.raises(StoreError, match=f"it is {status}, not running"):
        mark_stale_experiment(store, "x", force=True)
    assert path.read_bytes() == data


def test_mark_stale_with_unknown_verdict_needs_force(state_dir: Path) -> None:
    path = write_lem(state_dir, running_v1("nopid", None, datetime.now()))
    store = StateStore(state_dir, durable=False)
    verdict = verdict_for(store, "nopid")
    assert verdict.liveness is Liveness.UNKNOWN and "no owner recorded" in verdict.reason
    with pytest.raises(StoreError, match="owner is unknown"):
        mark_stale_experiment(store, "nopid")
    mark_stale_experiment(store, "nopid", force=True)
    assert json.loads(path.read_text())["status"] == "interrupted"


def test_native_owner_that_died_is_marked_with_history(state_dir: Path) -> None:
    me = identity_of()
    gone = me.model_copy(update={"pid": dead_pid()})
    store = StateStore(state_dir, durable=False)
    doc = ExperimentDoc(experiment_id="native", status=ExperimentStatus.RUNNING, owner=gone, last_updated=datetime.now().astimezone())
    store.create(doc)
    verdict = verdict_for(store, "native")
    assert verdict.is_dead
    mark_stale_experiment(store, "native")
    after = store.load("native").model
    assert after.status is ExperimentStatus.INTERRUPTED
    assert after.error_message == STALE_MESSAGE
    assert after.revision == 1
    assert [(h.from_status, h.to) for h in after.history] == [(ExperimentStatus.RUNNING, ExperimentStatus.INTERRUPTED)]


def test_native_owner_alive_with_matching_start(state_dir: Path) -> None:
    store = StateStore(state_dir, durable=False)
    doc = ExperimentDoc(experiment_id="me", status=ExperimentStatus.RUNNING, owner=identity_of(), last_updated=datetime.now().astimezone())
    store.create(doc)
    assert verdict_for(store, "me").is_alive


def test_read_only_store_refuses_mark_stale_before_judging(state_dir: Path) -> None:
    write_lem(state_dir, running_v1("ro", dead_pid(), datetime.now()))
    store = StateStore(state_dir, read_only=True)
    with pytest.raises(ActionRefused, match="read-only"):
        mark_stale_experiment(store, "ro", force=True)
    assert not (state_dir / ".expwatch").exists()
