"""Compare-and-swap, read-modify-write across real processes, and SIGKILL in the middle of saves."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest
from statekit import file_state, lem_text, lem_v1, write_lem

from state import ConflictError, ExperimentRecord, StateStore, parse_state
from state.lem import LemExperimentState
from state.native import ExperimentDoc


def counter_doc(experiment_id: str = "counter") -> ExperimentDoc:
    return ExperimentDoc(experiment_id=experiment_id, fields={"n": 0}, last_updated=datetime.now().astimezone())


def bump_n(model: ExperimentDoc) -> ExperimentDoc:
    return model.model_copy(update={"fields": {**model.fields, "n": model.fields["n"] + 1}})


def bump_cycle(model: LemExperimentState) -> LemExperimentState:
    return model.model_copy(update={"cycle_id": model.cycle_id + 1})


# -- compare-and-swap --------------------------------------------------------------------------
def test_save_with_a_stale_version_is_refused_and_changes_nothing(state_dir: Path) -> None:
    store = StateStore(state_dir, durable=False)
    store.create(counter_doc())
    first = store.load("counter")
    store.save(bump_n(first.model), expected=first.version)  # someone else's write
    before = file_state(state_dir / "counter.json")

    with pytest.raises(ConflictError, match="changed since it was read"):
        store.save(bump_n(bump_n(first.model)), expected=first.version)
    assert file_state(state_dir / "counter.json") == before
    assert store.load("counter").model.fields["n"] == 1
    assert list((state_dir / ".expwatch" / "tmp").iterdir()) == []


def test_create_refuses_an_existing_experiment(state_dir: Path) -> None:
    store = StateStore(state_dir, durable=False)
    store.create(counter_doc())
    before = file_state(state_dir / "counter.json")
    with pytest.raises(ConflictError, match="already exists"):
        store.create(counter_doc())
    assert file_state(state_dir / "counter.json") == before


def test_update_with_a_stale_expected_version_is_refused(state_dir: Path) -> None:
    path = write_lem(state_dir, lem_v1("lem", status="running"))
    store = StateStore(state_dir, durable=False)
    store.scan()
    seen = store.entries["lem"]
    assert isinstance(seen, ExperimentRecord)
    path.write_text(lem_text(lem_v1("lem", status="running", cycle_id=5)))  # llenergymeasure wrote meanwhile
    before = file_state(path)
    with pytest.raises(ConflictError):
        store.update("lem", bump_cycle, expected=seen.version)
    assert file_state(path) == before


def test_save_keeps_the_file_mode(state_dir: Path) -> None:
    path = write_lem(state_dir, lem_v1("mode"))
    path.chmod(0o640)
    store = StateStore(state_dir, durable=False)
    store.update("mode", bump_cycle)
    assert path.stat().st_mode & 0o777 == 0o640


# -- two processes, read-modify-write ----------------------------------------------------------
def run_updaters(state_dir: Path, ident: str, change, *, count: int, durable: bool, workers: int = 2) -> None:
    """Fork ``workers`` processes that each apply ``change`` ``count`` times through update()."""
    pids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                store = StateStore(state_dir, durable=durable)
                for _ in range(count):
                    store.update(ident, change)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    assert codes == [0] * workers


def test_two_processes_lose_no_update(state_dir: Path) -> None:
    StateStore(state_dir, durable=False).create(counter_doc())
    run_updaters(state_dir, "counter", bump_n, count=500, durable=False)
    assert StateStore(state_dir).load("counter").model.fields["n"] == 1000


def test_two_processes_lose_no_update_durably_on_a_v1_file(state_dir: Path) -> None:
    path = write_lem(state_dir, lem_v1("lem-counter", status="running"))
    run_updaters(state_dir, "lem-counter", bump_cycle, count=60, durable=True)
    after = LemExperimentState.model_validate_json(path.read_text())
    assert after.cycle_id == 120
    assert after.status.value == "running"


# -- SIGKILL in the middle of saves ----------------------------------------------------------
def saver_loop(state_dir: Path, durable: bool) -> None:
    store = StateStore(state_dir, durable=durable)
    while True:
        store.update("victim", bump_n)


def test_sigkill_during_saves_never_leaves_an_unreadable_file(state_dir: Path) -> None:
    rng = random.Random(20250314)
    path = state_dir / "victim.json"
    StateStore(state_dir, durable=False).create(counter_doc("victim"))
    last_n = 0
    kills = 0
    progressed = 0
    for round_no in range(220):
        durable = round_no % 5 == 0
        pid = os.fork()
        if pid == 0:
            try:
                saver_loop(state_dir, durable)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0, 0.02))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        kills += 1

        fmt, model = parse_state(path.read_bytes())  # raises if the file is torn
        assert isinstance(model, ExperimentDoc)
        assert model.fields["n"] >= last_n
        progressed += model.fields["n"] > last_n
        last_n = model.fields["n"]

    assert kills >= 200
    assert progressed > 50  # the children really were saving when killed
    assert sorted(p.name for p in state_dir.iterdir()) == [".expwatch", "victim.json"]
    leftovers = list((state_dir / ".expwatch" / "tmp").iterdir())
    assert all(p.name.startswith("victim.json.") and p.name.endswith(".tmp") for p in leftovers)
    store = StateStore(state_dir, read_only=True)
    store.scan()
    assert list(store.entries) == ["victim"]
    assert isinstance(store.entries["victim"], ExperimentRecord)
    assert json.loads(path.read_text())["fields"]["n"] == last_n
