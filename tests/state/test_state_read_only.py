"""Observer mode: a read-only store reads everything, refuses every write, creates nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import pytest
from statekit import dead_pid, in_child, lem_v1, lem_v2, tree_state, write_lem

from state import ExperimentStatus, Liveness, ReadOnlyStoreError, StateStore
from state.lem import LemExperimentState
from state.native import ExperimentDoc
from state.verdict import StaleVerdict

DEAD = StaleVerdict(Liveness.DEAD, "no such process")


def populate(directory: Path) -> None:
    write_lem(directory, lem_v1("v1-running", status="running", subprocess_pid=dead_pid()))
    write_lem(directory, lem_v2("v2-measuring", phase="measuring", subprocess_pid=dead_pid()))
    doc = ExperimentDoc(experiment_id="native", status=ExperimentStatus.RUNNING, last_updated=datetime.now().astimezone())
    (directory / "native.json").write_text(doc.to_json())
    (directory / "broken.json").write_text("{")


def exercise_read_only(directory: Path) -> None:
    """Every read works and every write path raises ReadOnlyStoreError."""
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
        "transition": lambda: store.transition("v1-running", ExperimentStatus.COMPLETED, why=None),
        "mark-stale": lambda: store.mark_stale("v1-running", verdict=DEAD),
        "mark-stale-alive": lambda: store.mark_stale("v1-running", verdict=StaleVerdict(Liveness.ALIVE, "x")),
        "mark-stale-force": lambda: store.mark_stale("v2-measuring", verdict=DEAD, force=True),
        "cleanup": lambda: store.cleanup_stale(lambda record: DEAD),
        "lock": lambda: store.lock("native").__enter__(),
    }
    for name, attempt in attempts.items():
        with pytest.raises(ReadOnlyStoreError):
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
    assert sorted(store.cleanup_stale(lambda record: DEAD)) == ["native", "v1-running", "v2-measuring"]
    assert (state_dir / ".expwatch" / "journal.jsonl").exists()
