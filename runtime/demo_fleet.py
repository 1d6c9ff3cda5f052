"""The fleet demo: a private Redis hub, three simulated hosts publishing into it, each with real runners.

Each host is a ``DemoFleet`` in its own directory (its own studies, runners, a
crash, a stale one) with its own ``expwatch agent --host-name NAME`` publishing
it, and GPUs simulated per host (the agent's ``--demo-gpus``: the host's live
workers on its own simulated GPUs), so a fleet dashboard on the hub shows the
hosts side by side as it would for real servers.

The hub is a ``redis-server`` of the demo's own: it listens on a unix socket in
a 0700 temporary directory and on no TCP port, so no other user of the machine
can read or write it, and it saves nothing. ``stop`` ends everything ``start``
began (runners and what was resumed from them, agents, the server) and removes
the temporary directories it made, never a directory it was given.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from runtime.demo import REAP_S, DemoFleet, Launch, describe_entry, reap_within
from runtime.launcher import reap_in_background
from runtime.parent_death import guarded

INSTALL_HINT = "redis-server is not installed; the fleet demo needs one: sudo apt-get install redis-server"
#: How long the server may take to answer its first PING.
REDIS_START_S = 20.0


class RedisMissing(Exception):
    """No ``redis-server`` on PATH: the message says how to install one."""


@dataclass(frozen=True)
class DemoHost:
    name: str
    gpus: int
    plan: Callable[[DemoFleet, dict[str, str]], list[Launch]]
    """The host's runners, given its fleet and the environment that gives them its simulated GPUs."""
    lem_file: bool = False


def _gpu_a(f: DemoFleet, env: dict[str, str]) -> list[Launch]:
    return [
        Launch("live-sweep", f.runner_argv("live-sweep", "live", "--processes", "2", "--gpus", "0,1", "--name", "70b sweep"), env),
        Launch("killed-sweep", f.runner_argv("killed-sweep", "long", "--processes", "2", "--gpus", "2,3", "--name", "killed mid-run"), env, "kill", 6.0),
        Launch("quick-baseline", f.runner_argv("quick-baseline", "quick", "--name", "baseline"), env),
    ]


def _gpu_b(f: DemoFleet, env: dict[str, str]) -> list[Launch]:
    return [
        Launch("long-sweep", f.runner_argv("long-sweep", "long", "--gpus", "0", "--name", "13b sweep"), env),
        Launch("oom-sweep", f.runner_argv("oom-sweep", "raising", "--gpus", "1", "--name", "batch sweep"), env),
        Launch("ctrl-c-sweep", f.runner_argv("ctrl-c-sweep", "long", "--gpus", "1", "--name", "stopped with ctrl-c"), env, "interrupt", 8.0),
    ]


def _lab_1(f: DemoFleet, env: dict[str, str]) -> list[Launch]:
    return [
        Launch("lab-protocol", f.runner_argv("lab-protocol", "lab", "--workcell", str(f.root / "workcell.json"), "--name", "ELISA plate"), {}),
        Launch("calibration", f.runner_argv("calibration", "long", "--gpus", "0", "--name", "reader calibration"), env),
    ]


HOSTS = (DemoHost("gpu-a", 4, _gpu_a), DemoHost("gpu-b", 2, _gpu_b, lem_file=True), DemoHost("lab-1", 1, _lab_1))


class PrivateRedis:
    """A ``redis-server`` reachable only through a unix socket in a 0700 directory, saving nothing."""

    def __init__(self, executable: str, directory: Path) -> None:
        self.executable = executable
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        argv = [
            self.executable, "--port", "0", "--bind", "127.0.0.1", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
            "--dir", str(self.directory), "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]
        self.process = subprocess.Popen(guarded(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        reap_in_background(self.process)
        from state.hub.connection import HubAddress, HubError
        from state.hub.schema import Hub

        hub = Hub(HubAddress.parse(self.url), timeout=2.0)
        deadline = time.monotonic() + REDIS_START_S
        try:
            while True:
                try:
                    hub.ping()
                    return
                except HubError:
                    pass
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}: {self._log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer on {self.socket} within {REDIS_START_S:g} s: {self._log_tail()}")
                time.sleep(0.05)
        finally:
            hub.close()

    def _log_tail(self) -> str:
        try:
            return (self.directory / "redis.log").read_text(errors="replace").strip().splitlines()[-1]
        except (OSError, IndexError):
            return "(no log)"

    def stop(self, grace: float = 5.0) -> list[int]:
        """SIGTERM (SIGKILL after ``grace``); the pid, if it was running."""
        return _terminate([self.process], grace)


def _terminate(procs: list[subprocess.Popen[bytes] | None], grace: float) -> list[int]:
    """SIGTERM to all at once, SIGKILL to those still there after ``grace``; the pids that were running.

    Every wait shares one deadline (``grace``, then ``REAP_S`` for the killed), so the stop of
    many processes takes no longer than that of one."""
    running = [p for p in procs if p is not None and p.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    left = []
    for proc in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            left.append(proc)
    reap_within(left, REAP_S)
    return [p.pid for p in running]


class FleetDemo:
    """Three demo hosts, their agents and the hub they publish to; ``root=None`` makes (and later removes) a temp dir."""

    def __init__(self, root: Path | None = None, *, hosts: tuple[DemoHost, ...] = HOSTS) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RedisMissing(INSTALL_HINT)
        self._made: list[Path] = []
        if root is None:
            root = self._temp_dir("expwatch-fleet-demo-")
        self.root = root.resolve()
        self.redis = PrivateRedis(executable, self._temp_dir("expwatch-hub-"))
        self.hosts = hosts
        self.fleets = {h.name: DemoFleet(self.root / h.name) for h in hosts}
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.events: list[str] = []

    def _temp_dir(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=prefix))  # 0700: only this user
        self._made.append(path)
        return path

    @property
    def url(self) -> str:
        return self.redis.url

    @property
    def temp_dirs(self) -> tuple[Path, ...]:
        return tuple(self._made)

    def prepare(self) -> None:
        for host in self.hosts:
            fleet = self.fleets[host.name]
            fleet.prepare(lem_file=host.lem_file)
            # Each runner keeps run.shared in the hub under its host's name (the URL through the environment).
            fleet.launches = [
                replace(launch, argv=[*launch.argv, "--hub", "env", "--host-name", host.name],
                        env={**launch.env, "EXPWATCH_HUB": self.url})
                for launch in host.plan(fleet, {"EXPWATCH_SIMULATE_GPUS": str(host.gpus)})
            ]

    def start(self) -> None:
        """The hub, then each host's agent and runners."""
        self.redis.start()
        self.events.append(f"hub: redis-server pid {self.redis.process.pid} on {self.redis.socket}")
        for host in self.hosts:
            self.agents[host.name] = self._start_agent(host)
            self.events.append(f"{host.name}: agent pid {self.agents[host.name].pid}")
        for host in self.hosts:
            self.fleets[host.name].start()
            self.events += [f"{host.name}: {e}" for e in self.fleets[host.name].events]

    def _start_agent(self, host: DemoHost) -> subprocess.Popen[bytes]:
        fleet = self.fleets[host.name]
        here = str(Path(__file__).resolve().parents[1])
        # The hub's URL goes through the environment, which other users cannot read (unlike argv).
        env = dict(os.environ, EXPWATCH_HUB=self.url, PYTHONPATH=here + os.pathsep + os.environ.get("PYTHONPATH", ""))
        argv = [sys.executable, "-m", "app.cli", "agent", str(fleet.state_dir), "--host-name", host.name, "--demo-gpus", str(host.gpus)]
        with open(fleet.root / "agent.out", "ab") as log:
            proc = subprocess.Popen(guarded(argv), cwd=fleet.root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        reap_in_background(proc)
        return proc

    def pids(self) -> list[int]:
        """Every process this demo started itself (runners, agents, the server) that has not been reaped."""
        procs = [l.proc for f in self.fleets.values() for l in f.launches] + list(self.agents.values()) + [self.redis.process]
        return [p.pid for p in procs if p is not None]

    def stop(self, grace: float = 5.0) -> list[int]:
        """Runners (and what was resumed from them), then agents, then the server; then the temp dirs. The pids signalled.

        All on the calling thread: every host's runners are signalled, then waited for
        against one deadline. (Threads here once waited forever: a demo signalled in the
        middle of an import could leave the import lock held, and their first import of
        a module blocked, with the main thread joining them and every signal ignored.)
        """
        targets = {name: fleet.terminate() for name, fleet in self.fleets.items()}
        deadline = time.monotonic() + grace
        for name, fleet in self.fleets.items():
            fleet.finish(targets[name], deadline)
        stopped = sorted(pid for pids in targets.values() for pid in pids)
        stopped += _terminate(list(self.agents.values()), grace)
        stopped += self.redis.stop(grace)
        for path in self._made:
            shutil.rmtree(path, ignore_errors=True)
        return stopped


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{'es' if noun.endswith('s') else 's'}"


def fleet_summary(url: str) -> list[str]:
    """What the hub holds, per host: its lease, its GPUs and its experiments with the host's verdicts."""
    from state.sources.hub import HubSource

    source = HubSource(url, name="fleet")
    try:
        source.reconcile()
        entries = source.entries()
        verdicts = source.judge(entries.values(), None, datetime.now().astimezone())  # type: ignore[arg-type]
        leases = {lease.host: lease for lease in source.hub.leases()}
        gpus = {g.host: g for g in source.fleet_gpus()}
    finally:
        source.hub.close()
        source.actions.hub.close()
    lines: list[str] = []
    for host in sorted({k.split("/", 1)[0] for k in entries} | leases.keys()):
        lease = leases.get(host)
        said = "agent alive" if lease is not None and lease.alive else "agent silent"
        snapshot = gpus[host].snapshot if host in gpus else None
        on_gpus = sum(len(g.processes) for g in snapshot.gpus) if snapshot is not None else 0
        shown = f"{_count(len(snapshot.gpus), 'GPU')}, {_count(on_gpus, 'process')} on them" if snapshot is not None else "no GPUs published"
        lines.append(f"{host}: {said}, {shown}")
        for key in sorted(k for k in entries if k.startswith(host + "/")):
            verdict = verdicts.get(key)
            lines.append(describe_entry(entries[key], dead=verdict is not None and verdict.is_dead))
    return lines


__all__ = ["HOSTS", "INSTALL_HINT", "DemoHost", "FleetDemo", "PrivateRedis", "RedisMissing", "fleet_summary"]
