"""Actions are planned once and executed as planned: a file that moved since is a conflict.

Real files in temporary directories; the only stand-in is a counter around
the launcher, so "nothing launched" is a count, not a wait.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import runtime.actions.resume as resume_module
from state.verdict import RULE_EVIDENCE, RULE_LEM
from runtime.actions import (
    ActionRefused,
    execute_cleanup,
    execute_mark_stale,
    execute_resume,
    mark_stale_experiment,
    plan_cleanup,
    plan_mark_stale,
    plan_resume,
    resume_experiment,
)
from runtime.liveness import identity_of
from state.lem import STALE_MESSAGE
from state.native import OwnerIdentity
from state.store import ConflictError, StateStore
from state.transitions import ExperimentStatus

from tests.runtime.helpers import (
    fake_lem_calls,
    install_fake_lem,
    journal,
    make_lem,
    make_native,
    read_doc,
    unused_pid,
    write_study,
)


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch, remember) -> list[tuple[str, ...]]:
    """Every launch a resume makes (the real launcher, counted); launched processes end with the test."""
    calls: list[tuple[str, ...]] = []
    real = resume_module.launch_detached

    def counted(argv, **kwargs):
        proc = real(argv, **kwargs)
        calls.append(tuple(argv))
        remember(proc.pid)
        return proc

    monkeypatch.setattr(resume_module, "launch_detached", counted)
    return calls


@pytest.fixture
def fake_lem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    install_fake_lem(bin_dir)
    out = tmp_path / "lem-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LEM_OUT", str(out))
    monkeypatch.delenv("EXPWATCH_RESUME_TEMPLATE", raising=False)
    return out


def another_save(state_dir: Path, key: str) -> bytes:
    """Someone else writes the file (a rename through the store); its new bytes."""
    StateStore(state_dir).update(key, lambda model: model.model_copy(update={"model_name": "changed elsewhere"}))
    return (state_dir / f"{key}.json").read_bytes()


def sidecar_files(state_dir: Path) -> set[str]:
    """What actions leave in the sidecar folder (locks and temp folders aside)."""
    sidecar = state_dir / ".expwatch"
    return {
        str(p.relative_to(sidecar)) for p in sidecar.rglob("*")
        if p.is_file() and p.parts[len(sidecar.parts)] not in ("locks", "tmp")
    } if sidecar.exists() else set()


# -- mark stale ------------------------------------------------------------------------
def test_mark_stale_plan_then_another_save_is_a_conflict(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path)
    make_native(state_dir, study, "dead", status="running")
    store = StateStore(state_dir)
    plan = plan_mark_stale(store, "dead")
    assert plan.allowed and plan.verdict.is_dead
    after_other = another_save(state_dir, "dead")
    with pytest.raises(ConflictError, match="changed since"):
        execute_mark_stale(store, plan)
    assert (state_dir / "dead.json").read_bytes() == after_other
    assert journal(state_dir) == []


def test_mark_stale_executes_as_planned_once(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path)
    make_native(state_dir, study, "dead", status="running", processes=2)
    store = StateStore(state_dir)
    plan = plan_mark_stale(store, "dead")
    result = execute_mark_stale(store, plan)
    assert (result.from_status, result.to_status, result.key) == ("running", "interrupted", "dead")
    assert result.version == store.load("dead").version != plan.version
    doc = read_doc(state_dir, "dead")
    assert doc.status is ExperimentStatus.INTERRUPTED and doc.error_message == STALE_MESSAGE
    assert all(p.status.value == "failed" for p in doc.processes.values())
    with pytest.raises(ConflictError):
        execute_mark_stale(store, plan)
    assert [(e["action"], e["reason"]) for e in journal(state_dir)] == [("mark-stale", plan.verdict.reason)]


def test_a_refused_plan_is_refused_unless_forced_and_force_never_beats_a_status(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path)
    elsewhere = OwnerIdentity(host="another-host", pid=4242, start_ticks=1)
    make_native(state_dir, study, "remote", status="running", owner=elsewhere)
    make_native(state_dir, study, "done", status="completed", completed=range(20))
    store = StateStore(state_dir)
    remote, done = plan_mark_stale(store, "remote"), plan_mark_stale(store, "done")
    assert remote.verdict.is_alive and not remote.verdict.proven
    assert not remote.allowed and remote.forcible and "only a dead owner" in remote.refusal
    assert not done.allowed and not done.forcible and done.refusal == "it is completed, not running"
    with pytest.raises(ActionRefused, match="the owner is alive"):
        execute_mark_stale(store, remote)
    with pytest.raises(ActionRefused, match="not running"):
        execute_mark_stale(store, done, force=True)
    assert journal(state_dir) == []
    forced = execute_mark_stale(store, remote, force=True)
    assert forced.to_status == "interrupted" and forced.journal_error is None
    assert journal(state_dir)[-1]["reason"].startswith("forced while owner alive")


def test_force_never_overrides_an_owner_proven_alive_on_this_host(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path)
    make_native(state_dir, study, "live", status="running", owner=identity_of())
    before = (state_dir / "live.json").read_bytes()
    store = StateStore(state_dir)
    plan = plan_mark_stale(store, "live")
    assert plan.verdict.proven and not plan.forcible and "--force does not override" in plan.refusal
    with pytest.raises(ActionRefused, match="the owner is alive"):
        execute_mark_stale(store, plan, force=True)
    with pytest.raises(ActionRefused, match="the owner is alive"):
        mark_stale_experiment(store, "live", force=True)
    assert (state_dir / "live.json").read_bytes() == before and journal(state_dir) == []


def test_a_plan_made_read_only_is_never_executed(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path)
    make_native(state_dir, study, "dead", status="running")
    before = (state_dir / "dead.json").read_bytes()
    plan = plan_mark_stale(StateStore(state_dir, read_only=True), "dead")
    assert plan.verdict.is_dead and not plan.allowed and plan.refusal.startswith("read-only")
    with pytest.raises(ActionRefused, match="read-only"):
        execute_mark_stale(StateStore(state_dir), plan, force=True)
    assert (state_dir / "dead.json").read_bytes() == before


def test_describe_for_each_verdict(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path)
    make_native(state_dir, study, "dead", status="running")
    make_native(state_dir, study, "alive", status="running", owner=identity_of())
    make_lem(state_dir, "unknown", status="running")
    make_lem(state_dir, "v2-dead", status="running", pid=unused_pid(), v2=True)
    store = StateStore(state_dir)

    dead = plan_mark_stale(store, "dead")
    lines = dead.describe()
    assert lines[:2] == ["status: running", f"verdict: dead: {dead.verdict.reason}"]
    assert lines[2].startswith("rule: expwatch's") and lines[3] == "evidence:"
    assert [line[4:] for line in lines[4:-2]] == list(dead.verdict.evidence) and dead.verdict.evidence
    assert lines[-2:] == ["", "It will become interrupted (with the stale message), and the action is journalled."]

    alive = plan_mark_stale(store, "alive")
    lines = alive.describe()
    assert lines[1] == f"verdict: alive: {alive.verdict.reason}"
    assert lines[-1] == (
        f"Refused: the owner is alive ({alive.verdict.reason}); only a dead owner can be marked stale"
        " (--force does not override a running process of this host)"
    )

    unknown = plan_mark_stale(store, "unknown")
    lines = unknown.describe()
    assert lines[1].startswith("verdict: unknown: ") and "no owner recorded" in lines[1]
    assert lines[-1].startswith("Refused: the owner is unknown")

    assert plan_mark_stale(store, "v2-dead").describe()[-1].startswith("It will become failed")


# -- clean up --------------------------------------------------------------------------
def test_plan_cleanup_judges_only_the_records_given(tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch):
    study = write_study(tmp_path)
    for key in ("dead-a", "dead-b", "dead-c"):
        make_native(state_dir, study, key, status="running")
    make_native(state_dir, study, "live", status="running", owner=identity_of())
    store = StateStore(state_dir)
    store.scan()
    given = [r for r in store.records() if r.key != "dead-c"]
    for path in state_dir.glob("*.json"):
        if path.stem not in ("dead-a", "dead-b", "live"):
            path.unlink()
    make_native(state_dir, study, "dead-new", status="running")

    def no_directory_read(*args, **kwargs):
        raise AssertionError("plan_cleanup read the directory")

    with monkeypatch.context() as patched:
        patched.setattr(os, "listdir", no_directory_read)
        patched.setattr(os, "scandir", no_directory_read)
        patched.setattr(StateStore, "scan", no_directory_read)
        plan = plan_cleanup(given)
    assert [mark.key for mark in plan] == ["dead-a", "dead-b"] and len(plan) == 2 and plan
    assert [mark.version for mark in plan] == [r.version for r in given if r.key != "live"]
    assert plan.describe() == [f"{m.experiment_id}: {m.verdict.reason}" for m in plan] and plan.refusal is None
    empty = plan_cleanup([r for r in given if r.key == "live"])
    assert not empty and empty.describe() == ["no running experiment has a dead owner"] == [empty.refusal]


def test_execute_cleanup_does_each_as_planned_and_reports_what_it_left(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path)
    for key in ("a", "b", "c"):
        make_native(state_dir, study, key, status="running")
    store = StateStore(state_dir)
    store.scan()
    plan = plan_cleanup(store.records())
    assert [mark.key for mark in plan] == ["a", "b", "c"]
    b_now = another_save(state_dir, "b")
    (state_dir / "c.json").unlink()
    result = execute_cleanup(store, plan)
    assert [(done.key, done.to_status) for done in result.done] == [("a", "interrupted")]
    assert [(skip.plan.key, "changed since" in skip.reason) for skip in result.skipped] == [("b", True), ("c", False)]
    assert "no experiment" in result.skipped[1].reason
    assert (state_dir / "b.json").read_bytes() == b_now
    assert [e["experiment"] for e in journal(state_dir)] == ["a"]


# -- resume ----------------------------------------------------------------------------
def test_resume_plan_then_another_save_launches_nothing(tmp_path: Path, state_dir: Path, launches):
    study = write_study(tmp_path)
    make_native(state_dir, study, "half", completed=range(10))
    store = StateStore(state_dir)
    plan = plan_resume(store, "half")
    assert plan.allowed
    after_other = another_save(state_dir, "half")
    with pytest.raises(ConflictError, match="changed since"):
        execute_resume(store, plan)
    assert launches == []
    assert (state_dir / "half.json").read_bytes() == after_other
    assert journal(state_dir) == [] and not plan.log_path.exists()


def test_a_resume_from_elsewhere_between_plan_and_execute_is_one_launch(tmp_path: Path, state_dir: Path, launches):
    """The dialog's plan, then a CLI resume, then the user's "y": the second is refused."""
    study = write_study(tmp_path)
    make_native(state_dir, study, "twice", completed=range(10))
    store = StateStore(state_dir)
    dialog = plan_resume(store, "twice")
    elsewhere = resume_experiment(StateStore(state_dir), "twice")
    with pytest.raises(ConflictError):
        execute_resume(store, dialog)
    assert len(launches) == 1
    assert [e["action"] for e in journal(state_dir)] == ["resume"]
    assert read_doc(state_dir, "twice").owner.pid == elsewhere.pid


def test_execute_resume_launches_once_per_plan(tmp_path: Path, state_dir: Path, launches):
    study = write_study(tmp_path)
    make_native(state_dir, study, "stale", status="running", completed=range(5))
    store = StateStore(state_dir)
    plan = plan_resume(store, "stale")
    assert plan.allowed and plan.needs_stale_mark
    result = execute_resume(store, plan)
    assert launches == [plan.argv] and result.pid == read_doc(state_dir, "stale").owner.pid
    with pytest.raises(ConflictError):
        execute_resume(store, plan)
    assert len(launches) == 1
    assert [(e["action"], e["from"], e["to"]) for e in journal(state_dir)] == [
        ("mark-stale", "running", "interrupted"),
        ("resume", "interrupted", "running"),
    ]
    assert read_doc(state_dir, "stale").attempt == 2


def test_lem_resume_plan_then_another_save_launches_nothing(tmp_path: Path, state_dir: Path, fake_lem: Path,
                                                           launches):
    make_lem(state_dir, "quiet")
    make_lem(state_dir, "crashed", status="running", pid=unused_pid())
    store = StateStore(state_dir)
    plans = {key: plan_resume(store, key) for key in ("quiet", "crashed")}
    assert all(plan.allowed for plan in plans.values()) and plans["crashed"].needs_stale_mark
    after = {key: another_save(state_dir, key) for key in plans}
    for key, plan in plans.items():
        with pytest.raises(ConflictError, match="changed since"):
            execute_resume(store, plan)
        assert (state_dir / f"{key}.json").read_bytes() == after[key]
    assert launches == [] and fake_lem_calls(fake_lem) == []
    assert journal(state_dir) == [] and sidecar_files(state_dir) == set()


def test_lem_execute_resume_launches_once_per_plan(tmp_path: Path, state_dir: Path, fake_lem: Path, launches):
    path = make_lem(state_dir, "lem-1")
    before = path.read_bytes()
    store = StateStore(state_dir)
    plan = plan_resume(store, "lem-1")
    assert plan.allowed and plan.launch_record is None
    execute_resume(store, plan)
    # llenergymeasure's file is its command's to change: the launch record moved on instead.
    with pytest.raises((ConflictError, ActionRefused), match="another resume|already under way"):
        execute_resume(store, plan)
    assert len(launches) == 1 and path.read_bytes() == before
    assert [e["action"] for e in journal(state_dir)] == ["resume"]
    assert sidecar_files(state_dir) >= {"launches/lem-1.json"}


def test_llenergymeasures_own_rule_is_an_explicit_choice_and_the_plan_says_so(tmp_path: Path, state_dir: Path):
    """Without a pid expwatch has no proof (unknown); llenergymeasure's own rule calls that stale."""
    make_lem(state_dir, "no-pid", status="running")
    store = StateStore(state_dir)
    evidence = plan_mark_stale(store, "no-pid")
    assert not evidence.verdict.is_dead and evidence.rule == RULE_EVIDENCE
    lem = plan_mark_stale(store, "no-pid", rule=RULE_LEM)
    assert lem.verdict.is_dead and lem.allowed and lem.rule == RULE_LEM
    assert any(line.startswith("rule: llenergymeasure's own") for line in lem.describe())
    result = execute_mark_stale(store, lem)
    assert result.to_status == "interrupted"
