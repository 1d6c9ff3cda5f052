"""``expwatch demo --fleet`` with real processes: a private redis-server, three hosts' agents and runners.

Each test points ``TMPDIR`` (or the demo's root) at a folder of its own, so "no temp
dir remains" and "no process is left" are checked on what this demo made, never on
what other suites running at the same time have.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.demo.test_demo import _processes_mentioning
from tests.hub.redis_server import REDIS_SERVER

ROOT = Path(__file__).resolve().parents[2]
needs_redis = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (apt-get install redis-server)")


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short private TMPDIR: a unix socket's path must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="efd-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _left_running(pids: list[int], before: float) -> list[str]:
    """Those of ``pids`` still running as the process that had them (a reused pid starts later)."""
    left = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() <= before and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{pid}: {' '.join(proc.cmdline())}")
        except psutil.Error:
            continue
    return left


def _hosts(summary: str) -> dict[str, dict[str, str]]:
    """``host: ...`` lines and their indented experiment lines, as {host: {"": header, id: line}}."""
    hosts: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in summary.splitlines():
        if re.match(r"^[a-z0-9-]+: agent", line):
            current = hosts.setdefault(line.split(":", 1)[0], {"": line})
        elif line.startswith("  ") and current and len(line.split()) > 1:
            current[line.split()[0]] = line
    return hosts


@needs_redis
def test_headless_fleet_demo_shows_three_hosts_through_the_hub_and_leaves_nothing(short_tmp: Path):
    env = dict(os.environ, TMPDIR=str(short_tmp))
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", "--fleet", "--headless", "--seconds", "14"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    ended = time.time()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    hosts = _hosts(out.split("\nhosts:\n", 1)[1])
    assert set(hosts) == {"gpu-a", "gpu-b", "lab-1"}, out
    for host, gpus in (("gpu-a", "4 GPUs"), ("gpu-b", "2 GPUs"), ("lab-1", "1 GPU,")):
        assert "agent alive" in hosts[host][""] and gpus in hosts[host][""], hosts[host][""]
    assert "0 processes" not in hosts["gpu-a"][""], "the running sweep's workers sit on gpu-a's simulated GPUs"
    assert "running" in hosts["gpu-a"]["live-sweep"] and "STALE" not in hosts["gpu-a"]["live-sweep"]
    assert "STALE" in hosts["gpu-a"]["killed-sweep"]
    assert "completed" in hosts["gpu-a"]["quick-baseline"]
    assert "failed" in hosts["gpu-b"]["oom-sweep"] and "/1/" in hosts["gpu-b"]["oom-sweep"]
    assert "interrupted" in hosts["gpu-b"]["ctrl-c-sweep"]
    assert "interrupted" in hosts["gpu-b"]["lem-llama2-7b-batch-sweep"]
    assert "running" in hosts["lab-1"]["lab-protocol"] and "running" in hosts["lab-1"]["calibration"]
    # Every process it started is gone (by pid), and so are the folders it made.
    pids = sorted({int(p) for p in re.findall(r"pid (\d+)", out)})
    assert len(pids) == 1 + 3 + 8, out  # the server, the agents, the runners
    assert _left_running(pids, ended) == []
    assert _processes_mentioning(str(short_tmp)) == []
    assert list(short_tmp.iterdir()) == []
    assert "temporary folders are removed" in result.stderr


def test_fleet_demo_without_redis_server_says_how_to_install_it(tmp_path: Path):
    empty = tmp_path / "bin"
    empty.mkdir()
    private = tmp_path / "tmp"
    private.mkdir()
    env = dict(os.environ, PATH=str(empty), TMPDIR=str(private))
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", "--fleet", "--headless", "--seconds", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "redis-server is not installed" in result.stderr and "sudo apt-get install redis-server" in result.stderr
    assert list(private.iterdir()) == [], "nothing made before refusing"


@needs_redis
@pytest.mark.slow
async def test_fleet_dashboard_on_the_running_demo_shows_hosts_and_their_gpus(short_tmp: Path, monkeypatch: pytest.MonkeyPatch):
    from app.app import DashboardOptions, ExpwatchApp
    from runtime.demo_fleet import FleetDemo
    from tests.dashboard.helpers import wait_for
    from widgets.gpu_panel import GpuPanel

    monkeypatch.setattr(tempfile, "tempdir", str(short_tmp))
    demo = FleetDemo()
    try:
        demo.prepare()
        demo.start()
        app = ExpwatchApp(DashboardOptions(sources=(demo.url,), local_gpus=False))
        async with app.run_test(size=(160, 48)) as pilot:
            table = app.main.table
            await wait_for(
                pilot, lambda: {r.entry.host for r in app.board.rows.values()} >= {"gpu-a", "gpu-b", "lab-1"}, 60, "every host's rows"
            )
            panel = app.main.query_one(GpuPanel)
            headers = ("── gpu-a (simulated)", "── gpu-b (simulated)", "── lab-1 (simulated)")
            await wait_for(pilot, lambda: panel.shown is not None and all(h in panel.shown.plain for h in headers), 60, "every host's GPUs")
            assert panel.border_title == "GPUs: 3 hosts"
            assert "this host" not in panel.shown.plain, "the demo's own machine has no GPUs of the fleet's"
            lines = panel.shown.plain.splitlines()
            at = lines.index("── gpu-a (simulated)")
            gpu_rows = [line.split()[0] for line in lines[at + 1 :] if line[:1].isdigit()][:4]
            assert gpu_rows == ["0", "1", "2", "3"]
            await wait_for(pilot, lambda: "live-sweep[" in panel.shown.plain, 60, "live-sweep's workers on gpu-a's GPUs")
            await pilot.pause()
            assert table.visible_columns(table.size.width)[0][0].label == "host"
            header = table.render_line(0).text
            assert header.split()[0] == "host", header
            screen = [table.render_line(y).text for y in range(1, 12)]
            for host in ("gpu-a", "gpu-b", "lab-1"):
                assert any(line.startswith(host) for line in screen), screen
            assert not app.worker_failures
        # The runners keep run.shared in the hub, under their host's name.
        from state.hub.connection import HubAddress
        from state.hub.schema import Hub
        from state.hub.shared import HubSharedState

        shared = HubSharedState(Hub(HubAddress.parse(demo.url)), "lab-1", "lab-protocol")
        deadline = time.monotonic() + 60
        while shared.values().get("wells_read", 0) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert shared.values().get("wells_read", 0) > 0, "lab-1's runner counts the wells it read in run.shared"
        assert shared.values()["plate_id"] == "ELISA-0042"
    finally:
        demo.stop(grace=5.0)
    assert _left_running(demo.pids(), time.time()) == []
    assert list(short_tmp.iterdir()) == []


#: What the fleet demo starts: its server, an agent per host, and each host's runners by id.
_FLEET_ROLES = frozenset(
    {"redis-server", "agent gpu-a", "agent gpu-b", "agent lab-1"}
    | {f"run {i}" for i in ("live-sweep", "killed-sweep", "quick-baseline", "long-sweep", "oom-sweep", "ctrl-c-sweep", "lab-protocol", "calibration")}
)


def _role(cmdline: str) -> str | None:
    """Which of ``_FLEET_ROLES`` a process is, from its command line (a launcher's wrapper counts as what it runs)."""
    if "redis-server" in cmdline:
        return "redis-server"
    if (m := re.search(r" -m app\.cli agent .* --host-name (\S+)", cmdline)) is not None:
        return f"agent {m[1]}"
    if (m := re.search(r" -m app\.cli run .* --id (\S+)", cmdline)) is not None:
        return f"run {m[1]}"
    return None


def _start_fleet_demo(short_tmp: Path, output: int) -> tuple[subprocess.Popen[str], list[str]]:
    """The headless fleet demo for 600 s, once its server, agents and runners have each been seen running.

    Each is waited for by what it is, and every process seen counts even if it has ended
    since: a count of those alive at one moment took the runners' workers for runners, and
    on a loaded machine a quick runner may end before the last host's runners start."""
    env = dict(os.environ, TMPDIR=str(short_tmp))
    demo = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "demo", "--fleet", "--headless", "--seconds", "600"],
        cwd=ROOT, env=env, stdout=output, stderr=output, text=True,
    )
    seen: dict[int, str] = {}  # pid -> "pid: cmdline", as first seen
    roles: set[str] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and demo.poll() is None:
        for line in _processes_mentioning(str(short_tmp)):
            seen.setdefault(int(line.split(":")[0]), line)  # the runners' workers too: none may be left either
            if (role := _role(line)) is not None:
                roles.add(role)
        if roles >= _FLEET_ROLES:
            return demo, list(seen.values())
        time.sleep(0.2)
    missing = sorted(_FLEET_ROLES - roles)
    ended = demo.poll()
    demo.kill()
    out, err = demo.communicate()
    raise AssertionError(
        f"the demo never started {missing} (it {'exited ' + str(ended) if ended is not None else 'was still running'}); "
        f"seen: {list(seen.values())}; its output: {(out or '')[-2000:]}{(err or '')[-2000:]}"
    )


@needs_redis
@pytest.mark.slow
def test_sigterm_stops_everything_the_fleet_demo_started(short_tmp: Path):
    demo, started = _start_fleet_demo(short_tmp, subprocess.PIPE)
    try:
        demo.send_signal(signal.SIGTERM)
        out, err = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 128 + signal.SIGTERM, err
    assert "temporary folders are removed" in err and "Traceback" not in err
    assert _left_running([int(p.split(":")[0]) for p in started], time.time()) == []
    assert list(short_tmp.iterdir()) == []


#: A fleet demo stopped while its main thread holds the import lock, as an exception raised by
#: a signal handler inside an import used to leave it: the stop must not need another thread.
_STOP_UNDER_IMPORT_LOCK = """
import _imp, sys
from pathlib import Path
from runtime.demo import Launch
from runtime.demo_fleet import DemoHost, FleetDemo

def sleeper(fleet, env):
    return [Launch("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"])]

demo = FleetDemo(Path(sys.argv[1]), hosts=(DemoHost("a", 1, sleeper), DemoHost("b", 1, sleeper)))
demo.prepare()
demo.start()
_imp.acquire_lock()
try:
    stopped = demo.stop(grace=1.0)
finally:
    _imp.release_lock()
print("stopped", " ".join(map(str, stopped)))
"""


@needs_redis
@pytest.mark.slow
def test_the_fleet_demo_stops_while_the_import_lock_is_held(short_tmp: Path):
    env = dict(os.environ, TMPDIR=str(short_tmp))
    result = subprocess.run(
        [sys.executable, "-c", _STOP_UNDER_IMPORT_LOCK, str(short_tmp / "demo")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    ended = time.time()
    assert result.returncode == 0, result.stderr
    pids = [int(p) for p in result.stdout.split("stopped", 1)[1].split()]
    assert len(pids) == 2 + 2 + 1, result.stdout  # the sleepers, the agents, the server
    assert _left_running(pids, ended) == []
    assert [p.name for p in short_tmp.iterdir()] == ["demo"], "the hub's temporary folder is removed"


@needs_redis
@pytest.mark.slow
def test_sigkill_of_the_fleet_demo_still_ends_what_it_started(short_tmp: Path):
    """SIGKILL runs none of the demo's cleanup: its hub, agents and runners end through their parent-death signal."""
    demo, _ = _start_fleet_demo(short_tmp, subprocess.DEVNULL)
    demo.kill()
    demo.wait()
    deadline = time.monotonic() + 60
    while _processes_mentioning(str(short_tmp)) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _processes_mentioning(str(short_tmp))
    for line in left:  # the test's own cleanup, so that a failure leaves nothing behind either
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(line.split(":")[0]), signal.SIGKILL)
    assert left == []
