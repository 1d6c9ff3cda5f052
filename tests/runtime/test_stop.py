"""Stop signals only a process proven to be the experiment's, and a real runner stops as with Ctrl-C.

Real processes throughout: a real runner stopped through the CLI, and plain
Python processes standing as recorded coordinators (one that ignores SIGINT,
for the second stop's SIGTERM; a live stranger whose start time differs, for
a reused PID that must never be signalled).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from runtime.actions import ActionRefused, execute_stop, plan_stop
from runtime.liveness import identity_of
from state.native import ExperimentStatus, OwnerIdentity, RunStatus
from state.store import ConflictError, StateStore

from tests.runtime.helpers import (
    COUNTING_STUDY,
    cli_env,
    expwatch,
    journal,
    make_lem,
    make_native,
    pid_gone,
    read_doc,
    start_expwatch,
    wait_for,
    write_study,
)

IGNORES_SIGINT = "import signal, sys, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('ready', flush=True); time.sleep(120)"


@pytest.fixture
def stand_in(remember):
    """A live Python process that ignores SIGINT, to stand as a recorded coordinator."""
    procs: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", IGNORES_SIGINT], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        remember(proc.pid)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def running_with_owner(state_dir: Path, study: Path, key: str, owner: OwnerIdentity) -> None:
    make_native(state_dir, study, key, status="running", owner=owner)


def test_a_real_runner_stopped_with_expwatch_stop_is_left_interrupted(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path, COUNTING_STUDY)
    env = cli_env(EXEC_LOG=str(tmp_path / "exec.log"), RUNS="60", STEP_MIN_S="0.05", STEP_MAX_S="0.08")
    proc = start_expwatch("run", study, "--state-dir", state_dir, "--id", "live", "-p", "2", cwd=tmp_path, env=env)
    try:
        wait_for(lambda: (d := read_doc(state_dir, "live")) and sum(r.status is RunStatus.COMPLETED for r in d.runs) >= 2,
                 what="a few runs done")
        stopped = expwatch("stop", "live", "--state-dir", state_dir)
        assert stopped.returncode == 0, stopped.stderr
        assert "SIGINT sent to coordinator pid" in stopped.stdout
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    doc = read_doc(state_dir, "live")
    assert doc is not None and doc.status is ExperimentStatus.INTERRUPTED
    assert doc.error_message.startswith("interrupted by SIGINT")
    assert all(r.status in (RunStatus.COMPLETED, RunStatus.PENDING) for r in doc.runs)
    # Its processes keep the shares they had: none reads as if all its runs were done.
    done = sum(r.status is RunStatus.COMPLETED for r in doc.runs)
    assert done < 60 and sum(p.runs_done for p in doc.processes.values()) == done
    assert all(p.runs_total > p.runs_done for p in doc.processes.values()), doc.processes
    [entry] = [e for e in journal(state_dir) if e["action"] == "stop"]
    assert entry["experiment"] == "live" and entry["reason"].startswith("SIGINT to coordinator pid")
    # Now it has stopped, another stop is refused (exit 4) with the reason.
    again = expwatch("stop", "live", "--state-dir", state_dir)
    assert again.returncode == 4 and "it is interrupted, not running" in again.stderr


def test_asked_twice_sigint_then_sigterm_only_after_the_grace(tmp_path: Path, state_dir: Path, stand_in):
    study = write_study(tmp_path, COUNTING_STUDY)
    proc = stand_in()
    running_with_owner(state_dir, study, "hung", identity_of(proc.pid))
    store = StateStore(state_dir)

    first = plan_stop(store, "hung")
    assert first.allowed and first.signum is signal.SIGINT
    execute_stop(store, first)
    assert proc.poll() is None  # it ignores SIGINT: still running

    soon = plan_stop(store, "hung")
    assert soon.signum is None and "already stopping" in (soon.refusal or "")
    with pytest.raises(ActionRefused):
        execute_stop(store, soon)

    later = plan_stop(store, "hung", now=first_time(state_dir) + timedelta(seconds=first.grace_s + 1))
    assert later.allowed and later.signum is signal.SIGTERM
    assert any("SIGTERM" in line for line in later.describe())
    execute_stop(store, later)
    assert proc.wait(timeout=10) == -signal.SIGTERM
    assert [e["reason"].split()[0] for e in journal(state_dir) if e["action"] == "stop"] == ["SIGINT", "SIGTERM"]


def first_time(state_dir: Path):
    from datetime import datetime

    return datetime.fromisoformat(journal(state_dir)[0]["time"])


def test_a_reused_pid_is_never_signalled(tmp_path: Path, state_dir: Path, stand_in):
    study = write_study(tmp_path, COUNTING_STUDY)
    proc = stand_in()
    real = identity_of(proc.pid)
    # The file names this PID, but a process that started at another time: not the experiment's.
    recorded = real.model_copy(update={"start_ticks": (real.start_ticks or 0) + 1000, "start_time": (real.start_time or 0) - 100})
    running_with_owner(state_dir, study, "reused", recorded)
    plan = plan_stop(StateStore(state_dir), "reused")
    assert not plan.allowed and "not proven alive" in plan.refusal and "PID reused" in plan.refusal
    result = expwatch("stop", "reused", "--state-dir", state_dir)
    assert result.returncode == 4 and "PID reused" in result.stderr
    assert proc.poll() is None and not journal(state_dir)


def test_a_pid_reused_between_plan_and_execute_gets_nothing(tmp_path: Path, state_dir: Path, stand_in):
    study = write_study(tmp_path, COUNTING_STUDY)
    proc = stand_in()
    running_with_owner(state_dir, study, "swap", identity_of(proc.pid))
    store = StateStore(state_dir)
    plan = plan_stop(store, "swap")
    proc.kill()
    proc.wait()
    with pytest.raises(ActionRefused, match="nothing was signalled"):
        execute_stop(store, plan)
    assert not journal(state_dir)


def test_another_coordinator_since_the_plan_is_a_conflict(tmp_path: Path, state_dir: Path, stand_in):
    study = write_study(tmp_path, COUNTING_STUDY)
    first, second = stand_in(), stand_in()
    running_with_owner(state_dir, study, "moved", identity_of(first.pid))
    store = StateStore(state_dir)
    plan = plan_stop(store, "moved")
    StateStore(state_dir).update("moved", lambda m: m.model_copy(update={"owner": identity_of(second.pid)}))
    with pytest.raises(ConflictError, match="another coordinator"):
        execute_stop(store, plan)
    assert first.poll() is None and second.poll() is None


def test_formats_without_an_identity_are_refused_with_why(tmp_path: Path, state_dir: Path, stand_in):
    proc = stand_in()
    make_lem(state_dir, "lem-run", status="running", pid=proc.pid)
    result = expwatch("stop", "lem-run", "--state-dir", state_dir)
    assert result.returncode == 4
    assert "llenergymeasure records only a PID" in result.stderr and "signals none" in result.stderr
    assert proc.poll() is None


def test_read_only_refuses_and_dry_run_sends_nothing(tmp_path: Path, state_dir: Path, stand_in):
    study = write_study(tmp_path, COUNTING_STUDY)
    proc = stand_in()
    running_with_owner(state_dir, study, "watched", identity_of(proc.pid))
    refused = expwatch("stop", "watched", "--state-dir", state_dir, "--read-only")
    assert refused.returncode == 4
    assert refused.stderr == "expwatch: refusing to stop watched: read-only (observer) mode: nothing can be changed\n"
    dry = expwatch("stop", "watched", "--state-dir", state_dir, "--dry-run")
    assert dry.returncode == 0 and f"would send SIGINT to coordinator pid {proc.pid}" in dry.stdout
    assert not journal(state_dir) and not pid_gone(proc.pid)
