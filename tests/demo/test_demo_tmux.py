"""End to end as a person: the demo in tmux at 80x24, keys sent, the screen read back."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.demo.test_demo import _processes_mentioning

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Pane:
    def __init__(self, session: str) -> None:
        self.session = session

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.session, *keys], check=True)

    def text(self) -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.session], capture_output=True, text=True, check=False
        ).stdout

    def wait_for(self, predicate, timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.text()
            if predicate(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen}")


def _row(screen: str, experiment: str) -> str:
    return next((line for line in screen.splitlines() if line.startswith(experiment)), "")


def test_stale_mark_resume_and_quit_in_tmux(tmp_path: Path):
    demo = tmp_path / "demo"
    session = f"expwatch-e2e-{os.getpid()}-{tmp_path.name}"  # unique across suites running at once
    command = f"cd {ROOT} && .venv/bin/python -m app.cli demo {demo}; sleep 30"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", command], check=True)
    pane = Pane(session)
    try:
        pane.wait_for(lambda s: "STALE" in _row(s, "killed-sweep"), 60, "the SIGKILLed experiment to show as STALE")
        pane.keys("/")
        # Type only once the box shows: keys sent before it has focus go to the table (d hides a panel).
        pane.wait_for(lambda s: "filter: id, name or status" in s, 10, "the filter box")
        pane.keys("killed")
        pane.keys("Enter")
        pane.wait_for(lambda s: "1 shown" in s, 10, "the filter to leave one row")
        pane.keys("S")
        pane.wait_for(lambda s: "Mark killed-sweep stale?" in s and "verdict: dead" in s, 15, "the mark-stale dialog with its evidence")
        pane.keys("y")
        pane.wait_for(lambda s: "interrupted" in _row(s, "killed-sweep"), 15, "the experiment to turn interrupted")
        pane.keys("R")
        pane.wait_for(lambda s: "Resume killed-sweep?" in s and "to run" in s, 15, "the resume dry run")
        pane.keys("y")
        pane.wait_for(lambda s: "running" in _row(s, "killed-sweep") and "alive" in _row(s, "killed-sweep"), 20, "the resumed experiment running")
        pane.wait_for(lambda s: "completed" in _row(s, "killed-sweep"), 120, "the resumed experiment to complete")
        assert "30/0/30" in _row(pane.text(), "killed-sweep")
        pane.keys("q")
        pane.wait_for(lambda s: "demo stopped" in s, 30, "the demo to stop")
        deadline = time.monotonic() + 15
        while _processes_mentioning(str(demo)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_mentioning(str(demo)) == []
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
