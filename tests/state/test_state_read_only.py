"""Observer mode: a read-only store reads everything, refuses every write, creates nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import pytest
from statekit import dead_pid, in_child, lem_v1, lem_v2, transition, tree_state, write_lem

from runtime.actions import (
    ActionRefused,
    execute_cleanup,
    execute_mark_stale,
    mark_stale_experiment,
    plan_cleanup,
    plan_mark_stale,
)
from runtime.liveness import identity_of
from state import ExperimentStatus, ReadOnlyStoreError, StateStore
from state.lem import LemExperimentState
from state.native import ExperimentDoc


def populate(directory: Path) -> None:
    write_lem(directory, lem_v1("v1-running", status="running", subprocess_pid=dead_pid()))
    write_lem(directory, lem_v2("v2-measuring", phase="measuring", subprocess_pid=dead_pid()))
    gone = identity_of().model_copy(update={"pid": dead_pid()})
    doc = ExperimentDoc(experiment_id="native", status=ExperimentStatus.RUNNING, owner=gone,
                        last_updated=datetime.now().astimezone())
    (directory / "native.json").write_text(doc.to_json())
    (directory / "broken.json").write_text("{")


def exercise_read_only(directory: Path) -> None:
    """Every read works; every write path of the store and every action refuses."""
    store = StateStore(directory, read_only=True)
    assert len(store.scan().added) == 4
    assert sorted(r.experiment_id for r in store.records()) == ["native", "v1-running", "v2-measuring"]
    assert store.load("v1-running").model.status is ExperimentStatus.RUNNING
    assert store.find_incomplete()
    assert list(store.journal.entries()) == []
    model = store.load("native").model

    attempts = {
        "save": lambda: store.save(model),
        "save-expected": lambda: store.save(model, expected=store.load("native").version),
        "create": lambda: store.create(LemExperimentState(experiment_id="brand-new")),
        "update": lambda: store.update("native", lambda m: m),
        "transition": lambda: transition(store, "v1-running", ExperimentStatus.COMPLETED, why=None),
        "mark-stale": lambda: execute_mark_stale(store, plan_mark_stale(store, "v1-running")),
        "mark-stale-force": lambda: execute_mark_stale(store, plan_mark_stale(store, "v2-measuring"), force=True),
        "mark-stale-cli": lambda: mark_stale_experiment(store, "v1-running", force=True),
        "cleanup": lambda: execute_cleanup(store, plan_cleanup(store.records())),
        "lock": lambda: store.lock("native").__enter__(),
    }
    for name, attempt in attempts.items():
        with pytest.raises((ReadOnlyStoreError, ActionRefused), match="read-only"):
            attempt()
            raise AssertionError(f"{name} did not refuse")


def test_every_write_path_is_refused_and_nothing_changes(state_dir: Path) -> None:
    populate(state_dir)
    before = tree_state(state_dir)
    exercise_read_only(state_dir)
    assert tree_state(state_dir) == before
    assert not (state_dir / ".expwatch").exists()


def test_read_only_store_on_a_directory_without_write_permission() -> None:
    """Run as an unprivileged user where possible (root ignores directory modes)."""
    base = Path(tempfile.mkdtemp(prefix="expwatch-ro-"))
    directory = base / ".state"
    try:
        directory.mkdir()
        populate(directory)
        for path in directory.iterdir():
            path.chmod(0o444)
        directory.chmod(0o555)
        base.chmod(0o755)
        before = tree_state(directory)

        def body() -> None:
            assert not os.access(directory, os.W_OK), "directory is still writable"
            exercise_read_only(directory)

        if os.geteuid() == 0:
            code, error = in_child(body, uid=65534, gid=65534)
        else:
            code, error = in_child(body)
        assert code == 0, error
        assert tree_state(directory) == before
        assert not (directory / ".expwatch").exists()
    finally:
        directory.chmod(0o755)
        shutil.rmtree(base)


def test_writable_store_on_the_same_files_does_write(state_dir: Path) -> None:
    """The refusals above come from read-only mode, not from the files."""
    populate(state_dir)
    store = StateStore(state_dir, durable=False)
    store.scan()
    done = execute_cleanup(store, plan_cleanup(store.records())).done
    assert sorted(result.experiment_id for result in done) == ["native", "v1-running", "v2-measuring"]
    assert (state_dir / ".expwatch" / "journal.jsonl").exists()
