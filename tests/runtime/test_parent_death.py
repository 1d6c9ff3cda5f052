"""``runtime.parent_death``: a child started through ``guarded`` ends when its parent is SIGKILLed (Linux).

Real processes: a parent started for the test starts a child through the wrapper,
then the test SIGKILLs the parent and waits (on a predicate, with a bound) for the child to go.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from runtime.parent_death import EXIT_PARENT_GONE, guarded

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]

_PARENT = """
import subprocess, sys, time
from runtime.parent_death import guarded
child = subprocess.Popen(guarded({argv!r}), start_new_session=True)
print(child.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_until(predicate, bound: float, what: str) -> None:
    deadline = time.monotonic() + bound
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what}")
        time.sleep(0.05)


@linux_only
def test_a_guarded_child_ends_when_its_parent_is_sigkilled():
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT.format(argv=SLEEPER)], cwd=root, stdout=subprocess.PIPE, text=True,
    )
    child = 0
    try:
        child = int(parent.stdout.readline())
        # The wrapper execs the command in its own place: the pid the parent holds is the command's.
        _wait_until(lambda: _gone(child) or "time.sleep(600)" in " ".join(psutil.Process(child).cmdline()), 30, "the exec")
        assert not _gone(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        _wait_until(lambda: _gone(child), 30, f"pid {child} to end with its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if child and not _gone(child):
            os.kill(child, signal.SIGKILL)


@linux_only
def test_the_wrapper_runs_nothing_when_its_parent_died_before_it_started(tmp_path: Path):
    marker = tmp_path / "ran"
    argv = guarded([sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"])
    pid_at = argv.index("--") - 2
    argv[pid_at] = str(os.getpid() + 1_000_000)  # a parent that is not this one: the one that started it is gone
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == EXIT_PARENT_GONE, result.stderr
    assert not marker.exists()


@linux_only
def test_the_wrapper_runs_the_command_with_its_arguments_and_exit_status(tmp_path: Path):
    result = subprocess.run(
        guarded([sys.executable, "-c", "import sys; print(sys.argv[1:]); sys.exit(3)", "a b", "--"]),
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip() == "['a b', '--']"


def test_without_prctl_the_command_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert guarded(["redis-server", "--port", "0"]) == ["redis-server", "--port", "0"]
