"""The audit journal: one JSON line per action, whatever the format; a torn tail is tolerated."""

from __future__ import annotations

import json
import socket
from datetime import datetime
from pathlib import Path

import pytest
from statekit import dead_pid, lem_v1, lem_v2, transition, write_lem

from runtime.actions import mark_stale_experiment
from state import ExperimentStatus, InvalidStateTransitionError, StateStore
from state.journal import AuditJournal, current_user

FIELDS = ["time", "user", "host", "experiment", "action", "from", "to", "reason"]


def journal_lines(state_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (state_dir / ".expwatch" / "journal.jsonl").read_text().splitlines()]


def test_actions_append_complete_entries(state_dir: Path) -> None:
    write_lem(state_dir, lem_v1("v1", status="running"))
    write_lem(state_dir, lem_v2("v2", phase="measuring", subprocess_pid=dead_pid()))
    store = StateStore(state_dir, durable=False)
    transition(store, "v1", ExperimentStatus.FAILED, why="operator stopped it", action="fail")
    transition(store, "v1", ExperimentStatus.RUNNING, why="retry", action="retry")
    marked = mark_stale_experiment(store, "v2")

    lines = journal_lines(state_dir)
    assert [list(line) for line in lines] == [FIELDS] * 3
    assert [(l["experiment"], l["action"], l["from"], l["to"], l["reason"]) for l in lines] == [
        ("v1", "fail", "running", "failed", "operator stopped it"),
        ("v1", "retry", "failed", "running", "retry"),
        ("v2", "mark-stale", "running", "failed", marked.verdict.reason),
    ]
    for line in lines:
        assert line["user"] == current_user()
        assert line["host"] == socket.gethostname()
        assert datetime.fromisoformat(line["time"]).tzinfo is not None
    assert [e.experiment for e in store.journal.entries("v1")] == ["v1", "v1"]


def test_refused_action_is_not_journalled(state_dir: Path) -> None:
    write_lem(state_dir, lem_v1("done", status="aggregated"))
    store = StateStore(state_dir, durable=False)
    with pytest.raises(InvalidStateTransitionError):
        transition(store, "done", ExperimentStatus.RUNNING, why="again")
    assert list(store.journal.entries()) == []


def test_torn_last_line_is_tolerated_and_does_not_swallow_the_next(tmp_path: Path) -> None:
    journal = AuditJournal(tmp_path / "journal.jsonl")
    journal.append(experiment="a", action="mark-stale", from_status="running", to_status="interrupted", reason="r1")
    with journal.path.open("ab") as handle:
        handle.write(b'{"time": "2025-01-01T00:00:00+00:00", "user": "bo')  # a crash mid-append
    assert [e.experiment for e in journal.entries()] == ["a"]

    journal.append(experiment="b", action="resume", from_status="interrupted", to_status="running", reason=None)
    assert [(e.experiment, e.reason) for e in journal.entries()] == [("a", "r1"), ("b", None)]


def test_garbage_lines_are_passed_over(tmp_path: Path) -> None:
    journal = AuditJournal(tmp_path / "journal.jsonl")
    journal.path.write_bytes(b'[1, 2]\n"text"\n{"time": 1}\n\xff\xfe\n\n')
    journal.append(experiment="c", action="retry", from_status="failed", to_status="running", reason="x")
    assert [e.experiment for e in journal.entries()] == ["c"]


def test_missing_journal_reads_empty(tmp_path: Path) -> None:
    assert list(AuditJournal(tmp_path / "none.jsonl").entries()) == []
