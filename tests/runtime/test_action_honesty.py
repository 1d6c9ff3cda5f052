"""Actions say exactly what they did: a journal they cannot write stops them before they act,
one that breaks after they acted is reported as such, and a forced mark is never silently undone."""

from __future__ import annotations

import errno
import signal
import subprocess
from pathlib import Path

import pytest

from app.cli import main as cli_main
from runtime.actions import execute_mark_stale, plan_mark_stale, resume_experiment
from runtime.actions.stale import stale_marked
from runtime.exit_codes import EXIT_CONFLICT, EXIT_ERROR, EXIT_REFUSED
from state.journal import JournalAppender
from state.store import StateStore
from state.transitions import ExperimentStatus

from tests.runtime.helpers import (
    COUNTING_STUDY,
    cli_env,
    expwatch,
    journal,
    make_native,
    owners_gone,
    read_doc,
    start_expwatch,
    wait_for,
    write_study,
)


def _unwritable_journal(state_dir: Path, how: str) -> Path:
    path = state_dir / ".expwatch" / "journal.jsonl"
    path.parent.mkdir(exist_ok=True)
    if how == "directory":
        path.mkdir()
        return path
    path.write_text('{"time": "t", "user": "u", "host": "h", "experiment": "x", "action": "a"}\n')
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    return path


@pytest.mark.parametrize("how", ["directory", "immutable"])
def test_an_unwritable_journal_refuses_mark_stale_and_resume_before_they_act(tmp_path: Path, state_dir: Path, how: str):
    study = write_study(tmp_path)
    make_native(state_dir, study, "dead", status="running")
    make_native(state_dir, study, "paused", status="interrupted", completed=range(5))
    before = {key: (state_dir / f"{key}.json").read_bytes() for key in ("dead", "paused")}
    path = _unwritable_journal(state_dir, how)
    try:
        marked = expwatch("mark-stale", "dead", "--state-dir", state_dir, cwd=tmp_path)
        resumed = expwatch("resume", "paused", "--state-dir", state_dir, cwd=tmp_path)
    finally:
        if how == "immutable":
            subprocess.run(["chattr", "-i", str(path)], check=True)
    for done, key in ((marked, "dead"), (resumed, "paused")):
        assert done.returncode == EXIT_REFUSED, done.stderr
        assert "audit journal" in done.stderr and "nothing was done" in done.stderr
        assert done.stdout == ""
        assert (state_dir / f"{key}.json").read_bytes() == before[key]
    assert not (state_dir / ".expwatch" / "logs").exists()  # no runner was launched


@pytest.fixture
def journal_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal opens, then the disk fills before the line is written (ENOSPC from ``write``)."""

    def full(self: JournalAppender, **fields: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(JournalAppender, "append", full)


def test_a_journal_that_breaks_after_the_mark_is_reported_exactly(
    tmp_path: Path, state_dir: Path, journal_breaks: None, capsys: pytest.CaptureFixture[str]
):
    study = write_study(tmp_path)
    make_native(state_dir, study, "first", status="running")
    make_native(state_dir, study, "second", status="running")
    store = StateStore(state_dir)
    result = execute_mark_stale(store, plan_mark_stale(store, "first"))
    assert result.to_status == "interrupted"
    assert result.journal_error == "the audit journal line could not be written (No space left on device)"
    assert read_doc(state_dir, "first").status is ExperimentStatus.INTERRUPTED

    code = cli_main(["mark-stale", "second", "--state-dir", str(state_dir)])
    out, err = capsys.readouterr()
    assert code == EXIT_ERROR
    assert out.startswith("second: running -> interrupted")
    assert err == "expwatch: done, but the audit journal line could not be written (No space left on device)\n"
    assert read_doc(state_dir, "second").status is ExperimentStatus.INTERRUPTED


def test_a_journal_that_breaks_after_the_launch_reports_the_launch(
    tmp_path: Path, state_dir: Path, journal_breaks: None, remember
):
    study = write_study(tmp_path)
    make_native(state_dir, study, "paused", status="interrupted", completed=range(19))
    result = resume_experiment(StateStore(state_dir), "paused")
    remember(result.pid)
    assert result.pid > 0 and "No space left on device" in result.journal_error
    assert journal(state_dir) == []


def test_force_is_refused_over_a_live_runner_and_the_runner_honours_a_mark_made_elsewhere(
    tmp_path: Path, state_dir: Path
):
    study = write_study(tmp_path, COUNTING_STUDY)
    env = cli_env(EXEC_LOG=str(tmp_path / "exec.log"), RUNS="200", STEP_MIN_S="0.05", STEP_MAX_S="0.05")
    proc = start_expwatch("run", study, "--state-dir", state_dir, "--id", "live", "-p", "2", cwd=tmp_path, env=env)
    try:
        wait_for(
            lambda: (d := read_doc(state_dir, "live")) and d.status is ExperimentStatus.RUNNING
            and any(r.status.value == "completed" for r in d.runs) and d,
            what="the runner under way",
        )
        # On this host the runner is provably alive: --force is refused, nothing changes.
        refused = expwatch("mark-stale", "live", "--force", "--state-dir", state_dir, cwd=tmp_path)
        assert refused.returncode == EXIT_REFUSED and "--force does not override" in refused.stderr
        assert journal(state_dir) == []
        # What a forced mark from another host (where the owner only looks alive) writes.
        _, marked = StateStore(state_dir).update(
            "live", lambda model: stale_marked(model, who="someone@elsewhere", reason="forced from another host")
        )
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert proc.returncode == EXIT_CONFLICT, err
    doc = read_doc(state_dir, "live")
    assert doc.status is ExperimentStatus.INTERRUPTED and owners_gone(doc)
    assert doc.history[-1].who == "someone@elsewhere" and doc.history[-1].to is ExperimentStatus.INTERRUPTED
    assert StateStore(state_dir).load("live").version == marked.version  # left exactly as marked
