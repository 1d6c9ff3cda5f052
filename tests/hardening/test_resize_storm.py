"""The terminal resized in a storm: in process (Pilot) on the main screen and the inspector, and
the real program in tmux. Nothing may raise, and the last size wins."""

from __future__ import annotations

import random
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from app.screens.inspector import InspectorScreen
from widgets.experiment_table import ExperimentTable
from widgets.status_header import StatusHeader

from tests.dashboard.conftest import populate
from tests.dashboard.helpers import make_app, wait_for

ROOT = Path(__file__).resolve().parents[2]
#: Tiny, narrow, tall, wide and ordinary sizes, with repeats, in a fixed pseudo-random order.
SIZES = [(1, 1), (2, 40), (200, 2), (10, 5), (80, 24), (40, 12), (250, 80), (81, 25), (79, 23), (120, 40)]


def storm(n: int, seed: int = 7) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [rng.choice(SIZES) if rng.random() < 0.5 else (rng.randint(1, 220), rng.randint(1, 70)) for _ in range(n)]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    root = tmp_path / "state"
    root.mkdir()
    populate(root)
    return root


async def test_resize_storm_on_the_main_screen_and_the_inspector(state_dir: Path) -> None:
    app = make_app(state_dir, gpus=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="initial scan")
        for width, height in storm(40):
            await pilot.resize_terminal(width, height)  # no pause between most of them: a storm
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        assert app.size == (80, 24)
        table = app.screen_stack[0].query_one(ExperimentTable)
        assert table.size.width <= 80 and table.size.height > 0
        assert app.screen_stack[0].query_one(StatusHeader).counts["running"] == 1
        # Still answers keys after the storm: open the inspector, storm it too, come back.
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, InspectorScreen), what="the inspector")
        for width, height in storm(25, seed=11):
            await pilot.resize_terminal(width, height)
        await pilot.resize_terminal(100, 30)
        await pilot.pause(0.2)
        assert app.size == (100, 30)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, InspectorScreen), what="back to the table")
        assert table.cursor_key is not None


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_resize_storm_in_tmux(state_dir: Path, tmp_path: Path) -> None:
    """The real program on a real terminal: 200 resizes as fast as tmux takes them, then 80x24.

    At least 10x4 here: tmux 3.3 itself sometimes dies when windows of one or two columns are
    resized in a burst; the in-process storm above covers 1x1.
    """
    session = f"expwatch-resize-{os.getpid()}-{tmp_path.name}"  # unique across suites running at once
    errors = tmp_path / "stderr.txt"
    # Textual draws on stderr: keep it on the terminal and only catch a traceback after exit.
    command = f"cd {ROOT} && .venv/bin/python -m app.cli {state_dir} --read-only; echo EXIT=$? > {errors}; sleep 30"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30", command], check=True)

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout

    def wait(predicate, timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = screen()
            if predicate(text):
                return text
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; the screen was:\n{text}")

    try:
        wait(lambda s: "sweep-alive" in s, 30, "the table")
        for width, height in storm(200, seed=3):
            subprocess.run(["tmux", "resize-window", "-t", session, "-x", str(max(width, 10)), "-y", str(max(height, 4))],
                           check=True)
        subprocess.run(["tmux", "resize-window", "-t", session, "-x", "80", "-y", "24"], check=True)
        final = wait(lambda s: "sweep-alive" in s and "READ-ONLY" in s and len(s.splitlines()) == 24, 20,
                     "the table redrawn at 80x24")
        assert all(len(line) <= 80 for line in final.splitlines())
        assert not errors.exists(), errors.read_text()  # still running
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        deadline = time.monotonic() + 15
        while not errors.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert errors.read_text().strip() == "EXIT=0"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
