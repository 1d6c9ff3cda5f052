"""The demo as CI runs it: real runner processes, a summary, and no process left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            launcher = cmd.startswith(("tmux", "sh -c", "bash -c"))  # the test's own terminal, not the demo
            if text in cmd and not launcher and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(f"{proc.info['pid']}: {cmd}")
        except psutil.Error:
            continue
    return found


def test_headless_demo_runs_every_case_and_leaves_no_orphans(tmp_path: Path):
    demo = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", str(demo), "--headless", "--seconds", "12"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and len(line.split()) > 1}
    assert "completed" in lines["quick-baseline"]
    assert "failed" in lines["oom-sweep"] and "/1/" in lines["oom-sweep"]
    assert "STALE" in lines["killed-sweep"]
    assert "interrupted" in lines["ctrl-c-sweep"]
    assert "interrupted" in lines["lem-llama2-7b-batch-sweep"]
    assert "running" in lines["live-sweep"] and "running" in lines["lab-protocol"]
    # The lab runner published its three simulated PyLabRobot devices.
    from state.devices import read_device_snapshots

    snapshots = read_device_snapshots(demo / ".state" / ".expwatch" / "devices")
    assert {d.name for s in snapshots for d in s.devices} == {"liquid_handler", "heater_shaker", "plate_reader"}
    # Every process the demo started is gone.
    assert _processes_mentioning(str(demo)) == []


def test_a_demo_runner_that_finished_is_reaped_not_a_zombie(tmp_path: Path):
    """Whoever starts a process reaps it: a finished runner must not linger as a zombie of the demo
    (the stale verdict would then call the owner of a completed experiment dead)."""
    import time

    from runtime.demo import DemoFleet, Launch

    fleet = DemoFleet(tmp_path / "demo")
    fleet.root.mkdir(parents=True)
    fleet.launches = [Launch("quick", [sys.executable, "-c", "pass"])]
    fleet.start()
    try:
        pid = fleet.launches[0].proc.pid
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and psutil.pid_exists(pid):
            time.sleep(0.02)
        assert not psutil.pid_exists(pid), f"pid {pid} is still there: {psutil.Process(pid).status()}"
    finally:
        fleet.stop(grace=1.0)


def test_sigterm_stops_every_runner_the_demo_started(tmp_path: Path):
    """`kill` of the demo (or a closed terminal's SIGHUP) ends it as q does: every runner is stopped."""
    import signal
    import time

    demo_dir = tmp_path / "demo"
    demo = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "demo", str(demo_dir), "--headless", "--seconds", "600"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(_processes_mentioning(str(demo_dir))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        started = _processes_mentioning(str(demo_dir))
        assert len(started) >= 2, started  # signalled while it may still be starting runners
        demo.send_signal(signal.SIGTERM)
        _, err = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 128 + signal.SIGTERM, err
    assert "demo stopped" in err and "Traceback" not in err
    assert _processes_mentioning(str(demo_dir)) == []
