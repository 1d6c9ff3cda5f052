"""Resume: plans, refusals, the relaunch, concurrency, llenergymeasure's command, read-only stores."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from app.cli import main
from runtime.actions import (
    ActionRefused,
    ResumeResult,
    cleanup_stale,
    execute_cleanup,
    mark_stale_experiment,
    plan_cleanup,
    plan_resume,
    resume_experiment,
)
from runtime.liveness import identity_of
from state.lem import STALE_MESSAGE
from state.native import RunStatus
from state.store import ConflictError, StateStore
from state.transitions import ExperimentStatus

from tests.runtime.helpers import (
    COUNTING_STUDY,
    cli_env,
    executions,
    expwatch,
    fake_lem_calls,
    install_fake_lem,
    journal,
    make_lem,
    make_native,
    owners_gone,
    read_doc,
    wait_for,
    write_study,
)


def _finished(state_dir: Path, key: str, pid: int) -> object:
    doc = read_doc(state_dir, key)
    return doc is not None and doc.status is not ExperimentStatus.RUNNING and owners_gone(doc) and doc


def wait_finished(state_dir: Path, key: str, result: ResumeResult, timeout: float = 30.0):
    return wait_for(lambda: _finished(state_dir, key, result.pid), timeout=timeout, what=f"{key} to finish")


# -- expwatch experiments ------------------------------------------------------------
def test_resume_runs_only_what_did_not_complete(tmp_path: Path, state_dir: Path, remember):
    study = write_study(tmp_path)
    make_native(state_dir, study, "half", completed=range(0, 20, 2))
    store = StateStore(state_dir)
    plan = plan_resume(store, "half")
    assert plan.allowed and plan.refusal is None and not plan.needs_stale_mark
    assert (plan.runs_to_run, plan.runs_skipped, plan.runs_failed_rerun) == (10, 10, 0)
    assert plan.argv[1:5] == ("-m", "runtime.runner", "--resume", "half") and plan.cwd == Path.cwd()
    assert any("10 to run, 10 completed (skipped)" in line for line in plan.describe())
    result = resume_experiment(store, "half")
    remember(result.pid)
    doc = wait_finished(state_dir, "half", result)
    assert doc.status is ExperimentStatus.COMPLETED
    assert doc.attempt == 2
    for rec in doc.runs:
        assert rec.status is RunStatus.COMPLETED
        # completed runs were never executed again: their placeholder fields survive
        assert rec.fields["square"] == (-1 if rec.index % 2 == 0 else rec.index**2)
    assert [(h.from_status, h.to) for h in doc.history][-2:] == [
        (ExperimentStatus.INTERRUPTED, ExperimentStatus.RUNNING),
        (ExperimentStatus.RUNNING, ExperimentStatus.COMPLETED),
    ]
    entries = [e for e in journal(state_dir) if e["experiment"] == "half"]
    assert [(e["action"], e["from"], e["to"]) for e in entries] == [("resume", "interrupted", "running")]
    assert Path(doc.log_path) == result.log_path and "resume attempt 2" in result.log_path.read_text()


def test_the_launched_runner_is_recorded_as_owner_before_it_starts(tmp_path: Path, state_dir: Path, remember):
    study = write_study(tmp_path)
    make_native(state_dir, study, "own", completed=range(10))
    result = resume_experiment(StateStore(state_dir), "own")
    remember(result.pid)
    doc = read_doc(state_dir, "own")
    # Written under the lock the runner waits for: the file never shows a dead owner.
    assert doc.status is ExperimentStatus.RUNNING
    assert doc.owner.pid == result.pid
    me = identity_of(result.pid)
    assert doc.owner.start_ticks == me.start_ticks
    again = plan_resume(StateStore(state_dir), "own")
    assert not again.allowed and again.refusal.startswith("already running")
    wait_finished(state_dir, "own", result)


def test_a_stale_running_experiment_is_marked_interrupted_then_resumed(tmp_path: Path, state_dir: Path, remember):
    study = write_study(tmp_path)
    make_native(state_dir, study, "stale", status="running", completed=range(15), processes=2)
    plan = plan_resume(StateStore(state_dir), "stale")
    assert plan.allowed and plan.needs_stale_mark and plan.verdict.is_dead
    result = resume_experiment(StateStore(state_dir), "stale")
    remember(result.pid)
    doc = wait_finished(state_dir, "stale", result)
    assert doc.status is ExperimentStatus.COMPLETED
    steps = [(h.from_status, h.to) for h in doc.history]
    assert (ExperimentStatus.RUNNING, ExperimentStatus.INTERRUPTED) in steps
    assert STALE_MESSAGE in next(h.why for h in doc.history if h.to is ExperimentStatus.INTERRUPTED)
    actions = [(e["action"], e["from"], e["to"]) for e in journal(state_dir)]
    assert actions == [("mark-stale", "running", "interrupted"), ("resume", "interrupted", "running")]


def test_refused_while_an_owner_is_alive(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path)
    path = state_dir / "alive.json"
    make_native(state_dir, study, "alive", owner=identity_of())
    before = path.read_bytes()
    plan = plan_resume(StateStore(state_dir), "alive")
    assert not plan.allowed and plan.refusal.startswith("an owner process is still alive")
    with pytest.raises(ActionRefused, match="still alive"):
        resume_experiment(StateStore(state_dir), "alive")
    make_native(state_dir, study, "alive-running", status="running", owner=identity_of())
    with pytest.raises(ActionRefused, match="already running"):
        resume_experiment(StateStore(state_dir), "alive-running")
    assert path.read_bytes() == before and journal(state_dir) == []


def test_failed_runs_rerun_only_with_retry_failed(tmp_path: Path, state_dir: Path, remember):
    study = write_study(tmp_path, COUNTING_STUDY)
    exec_log = tmp_path / "exec.log"
    env = cli_env(EXEC_LOG=str(exec_log), RUNS="6", FAIL_AT="1,4")
    done = expwatch("run", study, "--state-dir", state_dir, "--id", "f", cwd=tmp_path, env=env)
    assert done.returncode == 1
    refused = expwatch("resume", "f", "--state-dir", state_dir, env=cli_env(EXEC_LOG=str(exec_log)))
    assert refused.returncode == 4
    assert "use --retry-failed" in refused.stderr and refused.stderr.count("\n") == 1
    dry = expwatch("resume", "f", "--dry-run", "--retry-failed", "--state-dir", state_dir)
    assert dry.returncode == 0 and "2 to run, 4 completed (skipped), 2 failed to rerun" in dry.stdout
    os.environ["EXEC_LOG"] = str(exec_log)
    try:
        result = resume_experiment(StateStore(state_dir), "f", retry_failed=True)
    finally:
        del os.environ["EXEC_LOG"]
    remember(result.pid)
    doc = wait_finished(state_dir, "f", result)
    assert doc.status is ExperimentStatus.COMPLETED
    assert all(r.exception is None for r in doc.runs)
    counts = executions(exec_log)
    assert counts == {f"{i:04d}": 2 if i in (1, 4) else 1 for i in range(6)}


def test_resume_without_retry_leaves_failed_runs_failed(tmp_path: Path, state_dir: Path, remember):
    study = write_study(tmp_path)
    make_native(state_dir, study, "mixed", status="failed", completed=range(10), failed=[10, 11])
    plan = plan_resume(StateStore(state_dir), "mixed")
    assert plan.allowed and (plan.runs_to_run, plan.runs_failed_kept) == (8, 2)
    result = resume_experiment(StateStore(state_dir), "mixed")
    remember(result.pid)
    doc = wait_finished(state_dir, "mixed", result)
    assert doc.status is ExperimentStatus.FAILED
    assert [r.index for r in doc.runs if r.status is RunStatus.FAILED] == [10, 11]
    assert sum(r.status is RunStatus.COMPLETED for r in doc.runs) == 18


def test_dry_run_changes_nothing(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path)
    make_native(state_dir, study, "dry", status="running", completed=range(5))
    before = (state_dir / "dry.json").read_bytes()
    out = expwatch("resume", "dry", "--dry-run", "--state-dir", state_dir)
    assert out.returncode == 0, out.stderr
    assert "First marked interrupted" in out.stdout and "15 to run, 5 completed" in out.stdout
    assert (state_dir / "dry.json").read_bytes() == before
    assert journal(state_dir) == []


def test_completed_and_unknown_are_refused(tmp_path: Path, state_dir: Path, capsys):
    study = write_study(tmp_path)
    make_native(state_dir, study, "done", status="completed", completed=range(20))
    assert main(["resume", "done", "--state-dir", str(state_dir)]) == 4
    assert main(["resume", "nope", "--state-dir", str(state_dir)]) == 3
    assert "already completed" in capsys.readouterr().err


def _record_launch(state_dir: Path, key: str, argv: list[str], env: dict[str, str]) -> None:
    from state.native import ResumeSpec

    store = StateStore(state_dir)
    doc = read_doc(state_dir, key)
    doc.resume = ResumeSpec(argv=argv, cwd=str(state_dir.parent), env=env)
    store.save(doc, key=key)


def test_a_recorded_command_that_is_not_the_runner_is_never_launched(tmp_path: Path, state_dir: Path):
    """The file is input: whatever command it records, only expwatch's runner is run."""
    import sys

    study = write_study(tmp_path)
    make_native(state_dir, study, "hostile")
    marker = tmp_path / "pwned"
    _record_launch(state_dir, "hostile", ["sh", "-c", f"touch {marker}"],
                   {"LD_PRELOAD": "/tmp/evil.so", "CUDA_VISIBLE_DEVICES": "3"})
    plan = plan_resume(StateStore(state_dir), "hostile")
    assert plan.allowed, plan.refusal
    assert plan.argv[:3] == (sys.executable, "-m", "runtime.runner") and "sh" not in plan.argv
    assert plan.env == {}
    assert any("is not expwatch's runner: ignored" in n for n in plan.notes)
    out = expwatch("resume", "hostile", "--dry-run", "--state-dir", state_dir)
    assert out.returncode == 0 and "not expwatch's runner" in out.stdout, out.stderr
    assert not marker.exists()


def test_the_recorded_environment_keeps_only_the_carried_variables(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path)
    make_native(state_dir, study, "envy")
    doc = read_doc(state_dir, "envy")
    _record_launch(state_dir, "envy", doc.resume.argv,
                   {"LD_PRELOAD": "/tmp/evil.so", "PYTHONSTARTUP": "/tmp/x.py", "CUDA_VISIBLE_DEVICES": "3"})
    plan = plan_resume(StateStore(state_dir), "envy")
    assert plan.env == {"CUDA_VISIBLE_DEVICES": "3"}
    assert any("not carried: LD_PRELOAD, PYTHONSTARTUP" in n for n in plan.notes)


def test_a_recorded_python_that_does_not_exist_is_replaced_by_ours(tmp_path: Path, state_dir: Path):
    import sys

    study = write_study(tmp_path)
    make_native(state_dir, study, "py")
    doc = read_doc(state_dir, "py")
    _record_launch(state_dir, "py", ["relative/python", *doc.resume.argv[1:]], {})
    plan = plan_resume(StateStore(state_dir), "py")
    assert plan.argv[0] == sys.executable
    assert any("recorded Python relative/python not used" in n for n in plan.notes)


def test_another_users_file_is_refused_and_changes_nothing(tmp_path: Path, state_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch):
    """Resuming runs the study the file names: a file written by someone else would choose code run as us."""
    study = write_study(tmp_path)
    make_native(state_dir, study, "theirs")
    path = state_dir / "theirs.json"
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)
    else:
        real = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: real + 1)
    before = path.read_bytes()
    plan = plan_resume(StateStore(state_dir), "theirs")
    assert not plan.allowed and "another user's file" in plan.refusal and "ask " in plan.refusal
    with pytest.raises(ActionRefused, match="another user's file"):
        resume_experiment(StateStore(state_dir), "theirs")
    assert path.read_bytes() == before and journal(state_dir) == []


@pytest.mark.parametrize("callers", ["threads", "processes"])
def test_two_resumes_at_once_launch_exactly_one_runner(tmp_path: Path, state_dir: Path, remember, callers: str):
    study = write_study(tmp_path)
    make_native(state_dir, study, "race", completed=range(10))
    if callers == "threads":
        barrier = threading.Barrier(4)
        outcomes: list[object] = []

        def attempt() -> None:
            barrier.wait()
            try:
                outcomes.append(resume_experiment(StateStore(state_dir), "race"))
            except (ActionRefused, ConflictError) as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=attempt) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        wins = [o for o in outcomes if isinstance(o, ResumeResult)]
        assert len(outcomes) == 4 and len(wins) == 1, outcomes
        remember(wins[0].pid)
        result = wins[0]
    else:
        from tests.runtime.helpers import start_expwatch

        procs = [start_expwatch("resume", "race", "--state-dir", state_dir) for _ in range(3)]
        codes = [p.wait(30) for p in procs]
        assert sorted(codes)[0] == 0 and codes.count(0) == 1 and set(codes) <= {0, 4, 5}, codes
        doc = read_doc(state_dir, "race")
        remember(doc.owner.pid)
        result = None
    assert [e["action"] for e in journal(state_dir)] == ["resume"]
    doc = wait_for(lambda: _finished(state_dir, "race", 0), what="the one runner to finish")
    assert doc.status is ExperimentStatus.COMPLETED and doc.attempt == 2
    assert all(r.fields["square"] == -1 for r in doc.runs[:10])
    assert result is None or doc.history[-2].why.endswith(f"(pid {result.pid})")


# -- llenergymeasure experiments ----------------------------------------------------
@pytest.fixture
def fake_lem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    install_fake_lem(bin_dir)
    out = tmp_path / "lem-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LEM_OUT", str(out))
    monkeypatch.delenv("EXPWATCH_RESUME_TEMPLATE", raising=False)
    return out


def test_lem_resume_runs_the_template_beside_the_state_dir(tmp_path: Path, state_dir: Path, fake_lem: Path, remember):
    path = make_lem(state_dir, "lem exp/1")
    before = path.read_bytes()
    result = resume_experiment(StateStore(state_dir), "lem exp/1")
    remember(result.pid)
    calls = wait_for(lambda: fake_lem_calls(fake_lem), what="the fake lem to run")
    assert calls[0]["argv"] == ["experiment", "--resume", "lem exp/1"]
    assert calls[0]["cwd"] == str(tmp_path) and calls[0]["pid"] == result.pid
    assert path.read_bytes() == before  # llenergymeasure's own command owns its status
    wait_for(lambda: "fake lem running" in result.log_path.read_text(), what="its output in the log")
    assert result.log_path.parent == (state_dir / ".expwatch" / "logs").resolve()
    entries = journal(state_dir)
    assert [(e["action"], e["experiment"], e["from"], e["to"]) for e in entries] == [
        ("resume", "lem exp/1", "interrupted", "running")
    ]
    assert "lem experiment --resume" in entries[0]["reason"]


def test_lem_template_fields_and_environment(tmp_path: Path, state_dir: Path, fake_lem: Path,
                                             monkeypatch: pytest.MonkeyPatch, remember):
    make_lem(state_dir, "cfg", config_path="/configs/a b.yaml")
    template = "lem experiment --resume {experiment_id} --state {state_dir} --config {config_path}"
    monkeypatch.setenv("EXPWATCH_RESUME_TEMPLATE", template)
    plan = plan_resume(StateStore(state_dir), "cfg")
    assert plan.argv[1:] == ("experiment", "--resume", "cfg", "--state", str(state_dir.resolve()),
                             "--config", "/configs/a b.yaml")
    monkeypatch.delenv("EXPWATCH_RESUME_TEMPLATE")
    out = expwatch("resume", "cfg", "--state-dir", state_dir, "--resume-template", "lem again {experiment_id}",
                   env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    calls = wait_for(lambda: fake_lem_calls(fake_lem), what="the fake lem to run")
    assert calls[0]["argv"] == ["again", "cfg"]
    bad = plan_resume(StateStore(state_dir), "cfg", template="lem {nope}")
    assert not bad.allowed and "unknown field" in bad.refusal


def test_lem_missing_executable_is_a_clear_refusal_and_changes_nothing(tmp_path: Path, state_dir: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("EXPWATCH_RESUME_TEMPLATE", raising=False)
    from tests.runtime.helpers import unused_pid

    stale = make_lem(state_dir, "gone", status="running", pid=unused_pid())
    quiet = make_lem(state_dir, "quiet")
    files = {p: p.read_bytes() for p in (stale, quiet)}
    for ident in ("gone", "quiet"):
        with pytest.raises(ActionRefused, match="lem: command not found on PATH"):
            resume_experiment(StateStore(state_dir), ident)
    out = expwatch("resume", "quiet", "--state-dir", state_dir, env=dict(os.environ, PATH=str(tmp_path)))
    assert out.returncode == 4 and "command not found" in out.stderr and "Traceback" not in out.stderr
    assert {p: p.read_bytes() for p in files} == files
    assert journal(state_dir) == []


def test_lem_script_whose_interpreter_is_missing_is_refused_before_anything_changes(tmp_path: Path, state_dir: Path):
    from tests.runtime.helpers import unused_pid

    script = tmp_path / "resume.sh"
    script.write_text("#!/nonexistent/interp\necho hi\n")
    script.chmod(0o755)
    stale = make_lem(state_dir, "gone", status="running", pid=unused_pid())
    before = stale.read_bytes()
    out = expwatch("resume", "gone", "--state-dir", state_dir, "--resume-template", f"{script} {{experiment_id}}")
    assert out.returncode == 4 and "Traceback" not in out.stderr
    assert f"{script}: its interpreter /nonexistent/interp is not there" in out.stderr
    assert stale.read_bytes() == before and journal(state_dir) == []


def test_a_launch_that_fails_after_the_stale_mark_says_the_mark_stands(tmp_path: Path, state_dir: Path, fake_lem: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    from runtime.actions import resume as resume_module
    from runtime.launcher import LaunchError
    from tests.runtime.helpers import unused_pid

    def refuse(*args: object, **kwargs: object) -> None:
        raise LaunchError("cannot start lem: Exec format error")

    monkeypatch.setattr(resume_module, "launch_detached", refuse)
    path = make_lem(state_dir, "crashed", status="running", pid=unused_pid())
    with pytest.raises(ActionRefused) as refused:
        resume_experiment(StateStore(state_dir), "crashed")
    assert str(refused.value) == (
        "cannot resume crashed: cannot start lem: Exec format error; "
        "it was marked interrupted before the launch (its owner is dead) and stays so"
    )
    assert '"status": "interrupted"' in path.read_text()
    assert [e["action"] for e in journal(state_dir)] == ["mark-stale"]


def test_lem_stale_running_file_is_marked_then_resumed(tmp_path: Path, state_dir: Path, fake_lem: Path, remember):
    from tests.runtime.helpers import unused_pid

    path = make_lem(state_dir, "crashed", status="running", pid=unused_pid())
    result = resume_experiment(StateStore(state_dir), "crashed")
    remember(result.pid)
    assert '"status": "interrupted"' in path.read_text() and STALE_MESSAGE in path.read_text()
    assert [e["action"] for e in journal(state_dir)] == ["mark-stale", "resume"]
    wait_for(lambda: fake_lem_calls(fake_lem), what="the fake lem to run")


def test_lem_v2_stale_marked_file_is_resumable(tmp_path: Path, state_dir: Path, fake_lem: Path, remember):
    from tests.runtime.helpers import unused_pid

    path = make_lem(state_dir, "v2", status="running", pid=unused_pid(), v2=True)
    mark = mark_stale_experiment(StateStore(state_dir), "v2")
    assert (mark.from_status, mark.to_status) == ("running", "failed")
    assert '"failed": true' in path.read_text()
    result = resume_experiment(StateStore(state_dir), "v2")
    remember(result.pid)
    calls = wait_for(lambda: fake_lem_calls(fake_lem), what="the fake lem to run")
    assert calls[0]["argv"] == ["experiment", "--resume", "v2"]


def test_two_lem_resumes_at_once_launch_one_command(tmp_path: Path, state_dir: Path, fake_lem: Path,
                                                    monkeypatch: pytest.MonkeyPatch, remember):
    monkeypatch.setenv("FAKE_LEM_SLEEP", "3")
    make_lem(state_dir, "twice")
    barrier = threading.Barrier(3)
    outcomes: list[object] = []

    def attempt() -> None:
        barrier.wait()
        try:
            outcomes.append(resume_experiment(StateStore(state_dir), "twice"))
        except (ActionRefused, ConflictError) as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    wins = [o for o in outcomes if isinstance(o, ResumeResult)]
    assert len(wins) == 1, outcomes
    remember(wins[0].pid)
    assert all("already under way" in str(o) for o in outcomes if not isinstance(o, ResumeResult))
    calls = wait_for(lambda: fake_lem_calls(fake_lem), what="the fake lem to run")
    assert len(calls) == 1 and [e["action"] for e in journal(state_dir)] == ["resume"]


def test_lem_resumable_set_is_llenergymeasures_own_with_the_safety_rules_on_top(
        tmp_path: Path, state_dir: Path, fake_lem: Path):
    from datetime import datetime

    for status in ("initialised", "completed", "failed", "interrupted", "aggregated"):
        make_lem(state_dir, status, status=status)
    make_lem(state_dir, "busy", status="running", pid=os.getpid(), started=datetime.now())
    # this process started long after that experiment: its PID is a reused one
    make_lem(state_dir, "reused", status="running", pid=os.getpid(), started=datetime(2000, 1, 1))
    store = StateStore(state_dir)
    store.scan()
    incomplete = {r.experiment_id for r in store.find_incomplete()}
    assert incomplete == {"initialised", "completed", "failed", "interrupted", "busy", "reused"}
    plans = {key: plan_resume(store, key) for key in ("initialised", "completed", "failed", "interrupted", "aggregated")}
    assert {k for k, p in plans.items() if p.allowed} == incomplete - {"busy", "reused"}
    assert plans["completed"].incomplete_reason == "completed, results not aggregated"
    assert "llenergymeasure: incomplete (completed, results not aggregated)" in plans["completed"].describe()
    assert "not among llenergymeasure's incomplete experiments" in plans["aggregated"].refusal
    assert plans["aggregated"].refused_by is None
    busy = plan_resume(store, "busy")
    assert busy.refusal.startswith("already running") and busy.refusal.endswith("[expwatch safety rule: live owner]")
    assert busy.refused_by == "live owner" and busy.incomplete_reason == "running, not finished"
    reused = plan_resume(store, "reused")
    assert reused.allowed and reused.needs_stale_mark and "PID reused" in reused.verdict.reason


def test_list_json_shows_llenergymeasures_incomplete_reason(state_dir: Path, capsys):
    import json

    make_lem(state_dir, "done", status="aggregated")
    make_lem(state_dir, "half", status="completed")
    assert main(["list", "--json", "--source", str(state_dir)]) == 0
    rows = {row["key"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["half"]["incomplete_reason"] == "completed, results not aggregated"
    assert rows["done"]["incomplete_reason"] is None


def test_lem_default_command_follows_the_writer_and_says_how_to_change_it(state_dir: Path, fake_lem: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    make_lem(state_dir, "six", status="interrupted")
    plan = plan_resume(StateStore(state_dir), "six")
    assert plan.argv[1:] == ("experiment", "--resume", "six") and Path(plan.argv[0]).name == "lem"
    assert any("6-state StateManager" in n and "$EXPWATCH_RESUME_TEMPLATE" in n for n in plan.notes)
    monkeypatch.setenv("EXPWATCH_RESUME_TEMPLATE", "lem experiment --resume {experiment_id} --yes")
    changed = plan_resume(StateStore(state_dir), "six")
    assert changed.argv[-1] == "--yes" and not any("6-state" in n for n in changed.notes)


# -- read-only stores ---------------------------------------------------------------
def test_read_only_store_refuses_every_action_and_writes_nothing(tmp_path: Path, state_dir: Path, fake_lem: Path,
                                                                  capsys):
    study = write_study(tmp_path)
    make_native(state_dir, study, "ro", status="running", completed=range(3))
    make_lem(state_dir, "ro-lem")
    sidecar = state_dir / ".expwatch"
    import shutil

    shutil.rmtree(sidecar, ignore_errors=True)
    files = {p: p.read_bytes() for p in state_dir.glob("*.json")}
    store = StateStore(state_dir, read_only=True)
    for ident in ("ro", "ro-lem"):
        plan = plan_resume(store, ident)
        assert not plan.allowed and plan.refusal.startswith("read-only")
        with pytest.raises(ActionRefused, match="read-only"):
            resume_experiment(store, ident)
    with pytest.raises(ActionRefused, match="read-only"):
        mark_stale_experiment(store, "ro")
    store.scan()
    with pytest.raises(ActionRefused, match="read-only"):
        execute_cleanup(store, plan_cleanup(store.records()))
    with pytest.raises(ActionRefused, match="read-only"):
        cleanup_stale(store)
    for args in (["resume", "ro"], ["resume", "ro-lem"], ["mark-stale", "ro"], ["mark-stale", "--all"]):
        assert main([*args, "--read-only", "--state-dir", str(state_dir)]) == 4
        assert "read-only" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in state_dir.glob("*.json")} == files
    assert not sidecar.exists()
    assert fake_lem_calls(fake_lem) == []


def test_cleanup_marks_only_dead_running_experiments(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path)
    make_native(state_dir, study, "dead-1", status="running")
    make_native(state_dir, study, "live-1", status="running", owner=identity_of())
    make_native(state_dir, study, "done-1", status="completed", completed=range(20))
    store = StateStore(state_dir)
    store.scan()
    planned = plan_cleanup(store.records())
    assert [mark.key for mark in planned] == ["dead-1"] and planned.marks[0].verdict.is_dead
    results = cleanup_stale(store)
    assert [(r.experiment_id, r.from_status, r.to_status) for r in results] == [("dead-1", "running", "interrupted")]
    doc = read_doc(state_dir, "dead-1")
    assert doc.status is ExperimentStatus.INTERRUPTED and doc.error_message == STALE_MESSAGE
    assert all(p.status.value == "failed" for p in doc.processes.values())
    assert read_doc(state_dir, "live-1").status is ExperimentStatus.RUNNING
    with pytest.raises(ActionRefused, match="owner is alive"):
        mark_stale_experiment(store, "live-1")
    with pytest.raises(ActionRefused, match="not running"):
        mark_stale_experiment(store, "done-1")
    with pytest.raises(ActionRefused, match="--force does not override a running process of this host"):
        mark_stale_experiment(store, "live-1", force=True)
    assert read_doc(state_dir, "live-1").status is ExperimentStatus.RUNNING


def test_mark_stale_refuses_a_stale_version(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path)
    make_native(state_dir, study, "cas", status="running")
    store = StateStore(state_dir)
    store.scan()
    seen = store.entries["cas"].version
    store.update("cas", lambda m: m.model_copy(update={"name": "renamed"}))
    with pytest.raises(ConflictError):
        mark_stale_experiment(store, "cas", expected=seen)
    assert read_doc(state_dir, "cas").status is ExperimentStatus.RUNNING


def test_a_log_folder_swapped_for_a_symlink_after_its_check_is_refused(tmp_path: Path, state_dir: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    """The log is opened through checked folder descriptors, not by a path checked a moment earlier."""
    from runtime.actions import execute_resume

    study = write_study(tmp_path)
    make_native(state_dir, study, "swap")
    store = StateStore(state_dir)
    plan = plan_resume(store, "swap")
    assert plan.allowed, plan.refusal
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    checked = StateStore.prepare_logs

    def check_then_swap(self: StateStore) -> Path:
        folder = checked(self)
        folder.rmdir()
        folder.symlink_to(elsewhere, target_is_directory=True)
        return folder

    monkeypatch.setattr(StateStore, "prepare_logs", check_then_swap)
    before = (state_dir / "swap.json").read_bytes()
    with pytest.raises(ActionRefused, match="symlink"):
        execute_resume(store, plan)
    assert list(elsewhere.iterdir()) == []
    assert (state_dir / "swap.json").read_bytes() == before
