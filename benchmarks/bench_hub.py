"""Fleet figures through a Redis hub: 32 hosts x 8 GPUs x 300 experiments, one dashboard on a pty.

Everything runs here: a private ``redis-server`` on a free port (tests/hub/redis_server.py),
one publisher process running 32 real ``HubAgent``s (runtime/agent.py, each with its own
host name, state directory of 300 experiments, lease and 8 simulated GPUs sampled every
second), and the dashboard (``expwatch redis://...``, the real ExpwatchApp) on a pty.

- change-to-screen latency through the hub: a host's state file replaced -> that host's
  agent publishes it -> the dashboard shows it; beside it, the floor measured in the same run,
  interleaved: one raw ``XADD`` -> ``XREAD BLOCK`` round trip on the same server
- change-to-screen latency of a row that moves (``--sort updated``: the changed row goes to the top)
- the dashboard's first full fleet picture (spawn -> "9600 exp" on screen), beside the raw read
  of every record hash (SCAN + pipelined HMGET) from this process, and the same dashboard on
  the 32 state directories themselves (a peer: no hub)
- dashboard CPU idle (no experiment changes; leases and GPU snapshots still flow) and under
  50 changes/s spread over the hosts
- Redis memory per experiment (INFO used_memory delta / 9,600), the key count
- agent CPU per host: one real ``expwatch agent`` process over 300 experiments and 8
  simulated GPUs, idle and under 10 changes/s

Prints a table of medians with the load average. Run: .venv/bin/python benchmarks/bench_hub.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_dashboard import EXPWATCH, Terminal  # noqa: E402
from state.native import ExperimentDoc, OwnerIdentity, ProcessInfo, RunRecord  # noqa: E402
from tests.hub.redis_server import REDIS_SERVER, RedisServer  # noqa: E402

HOSTS, GPUS, EXPERIMENTS = 32, 8, 300
#: Running experiments per host: one per GPU; the rest finished.
RUNNING = GPUS
RUNS = 20
FLEET = HOSTS * EXPERIMENTS
LATENCY_GOAL_MS = 100.0
LOAD_RATE = 50.0
AGENT_RATE = 10.0


def host_name(index: int) -> str:
    return f"gpu{index:02d}"


def experiment_id(host: str, i: int) -> str:
    """Ids differ between hosts (as they do in a lab): in the status order, the running ones of
    the first hosts are the rows on screen."""
    return f"{host}-exp{i:03d}"


def experiment_doc(host: str, i: int, owner: OwnerIdentity, now: datetime) -> ExperimentDoc:
    """Experiment ``i`` of ``host``: the first ``RUNNING`` are running (owned by ``owner``), the rest finished."""
    running = i < RUNNING
    status = "running" if running else ("completed", "completed", "failed", "interrupted")[i % 4]
    done = RUNS // 2 if running else RUNS
    started = now - timedelta(hours=2, minutes=i % 60)
    runs = [
        RunRecord(id_run=f"r{j}", index=j, params={"lr": 10 ** -(j % 5), "batch": 2 ** (j % 6)},
                  fields={"loss": 1.0 / (j + 1)} if j < done else {}, status="completed" if j < done else "pending")
        for j in range(RUNS)
    ]
    process = ProcessInfo(process_index=0, status="running" if running else "completed", gpu_id=i % GPUS,
                          owner=owner if running else None, runs_total=RUNS, runs_done=done, current_step="measure",
                          started_at=started)
    return ExperimentDoc(
        experiment_id=experiment_id(host, i), name=f"sweep-{i % 17}", status=status, owner=owner if running else None,
        heartbeat_at=now if running else None, num_processes=1, processes={"0": process}, runs=runs,
        config={"model": "bench-model", "dataset": "bench-data"}, created_at=started, started_at=started,
        finished_at=None if running else started + timedelta(minutes=30), last_updated=now - timedelta(hours=1, seconds=i),
    )


def make_host_dir(root: Path, owner: OwnerIdentity) -> Path:
    """A host's state directory named after the host (the source name the agent publishes under)."""
    root.mkdir(parents=True)
    now = datetime.now(timezone.utc)
    for i in range(EXPERIMENTS):
        (root / f"{experiment_id(root.name, i)}.json").write_text(experiment_doc(root.name, i, owner, now).to_json())
    return root


def state_file(root: Path, i: int) -> Path:
    return root / f"{experiment_id(root.name, i)}.json"


def rewrite(path: Path, **changes: object) -> float:
    """Replace ``path`` atomically with ``changes`` applied and ``last_updated`` now; the time of the replace."""
    doc = ExperimentDoc.model_validate_json(path.read_bytes())
    doc = doc.model_copy(update={**changes, "last_updated": datetime.now(timezone.utc)})
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(doc.to_json())
    started = time.perf_counter()
    os.replace(tmp, path)
    return started


# -- the publisher process -----------------------------------------------------------------------------
def publish_fleet(url: str, directories: list[str]) -> None:
    """32 real agents in one process, one asyncio loop: prints "published" once all have published."""
    from runtime.agent import HubAgent
    from runtime.gpu.simulated import SimulatedGpuSource
    from state.hub.schema import Hub
    from state.sources import DirectorySource

    async def run() -> None:
        loop = asyncio.get_running_loop()
        # Each agent holds a thread for its action stream: the default executor (6 threads here) would starve.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=4 * len(directories) + 8))
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        agents = [
            HubAgent(Hub(url), [DirectorySource(Path(d), read_only=True)], host_name(i),
                     gpu_source=SimulatedGpuSource(count=GPUS, seed=i), accept_actions=False)
            for i, d in enumerate(directories)
        ]
        tasks = [asyncio.create_task(a.run(stop)) for a in agents]
        while not all(a.resyncs for a in agents) and not stop.is_set():
            await asyncio.sleep(0.1)
        print("published", flush=True)
        await stop.wait()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())


# -- the floor: a raw stream round trip -----------------------------------------------------------------
class StreamFloor:
    """XADD from this thread -> XREAD BLOCK in another thread of this process: what any hub reader pays at least.

    The same thread follows the hub's change stream too, noting when each record's event
    arrived: the agent's share of a change's latency (file -> event), the rest is the dashboard's.
    """

    KEY = "bench:floor"
    EVENTS = "expwatch:events"

    def __init__(self, server: RedisServer) -> None:
        self.writer = server.client()
        self.reader = server.client()
        self.got = threading.Event()
        self.received_at = 0.0
        self.event_at: dict[str, float] = {}
        self.stopped = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        last = {self.KEY: "$", self.EVENTS: "$"}
        while not self.stopped:
            for stream, entries in self.reader.xread(last, block=500) or ():
                now = time.perf_counter()
                name = stream.decode()
                last[name] = entries[-1][0]
                if name == self.KEY:
                    self.received_at = now
                    self.got.set()
                else:
                    for _id, fields in entries:
                        self.event_at.setdefault(fields.get(b"k", b"").decode(), now)

    def sample_ms(self) -> float:
        self.got.clear()
        started = time.perf_counter()
        self.writer.xadd(self.KEY, {"n": "1"}, maxlen=100)
        if not self.got.wait(5):
            raise TimeoutError("the floor's XREAD did not see its XADD within 5 s")
        return (self.received_at - started) * 1000

    def close(self) -> None:
        self.stopped = True
        self.thread.join(2)


# -- measurements ---------------------------------------------------------------------------------------
def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def tree_cpu_seconds(proc: psutil.Process) -> float:
    """The process and its children (the dashboard is launched through ``python -c``, one process)."""
    total = cpu_seconds(proc)
    for child in proc.children(recursive=True):
        try:
            total += cpu_seconds(child)
        except psutil.NoSuchProcess:
            pass
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


def cpu_while(procs: dict[str, psutil.Process], seconds: float, step, term: Terminal | None = None) -> dict[str, float]:
    """CPU % of each process over ``seconds`` while ``step(elapsed)`` runs in a loop (and the pty is read)."""
    before = {name: tree_cpu_seconds(p) for name, p in procs.items()}
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        wait = step(elapsed)
        if term is not None:
            term.pump(wait)
        else:
            time.sleep(wait)
    elapsed = time.perf_counter() - started
    return {name: (tree_cpu_seconds(p) - before[name]) / elapsed * 100 for name, p in procs.items()}


def idle_beside_bare(term: Terminal, procs: dict[str, psutil.Process], windows: int, seconds: float) -> dict[str, list[float]]:
    """CPU % of ``procs`` and of a bare Textual app (the floor) over the same idle windows, side by side:
    both see the same load. Returns each process's per-window figures."""
    bare = Terminal(None)
    try:
        bare.wait_for(b"bare Textual app", timeout=60)
        bare.drain(2.0)
        watched = {**procs, "bare": psutil.Process(bare.proc.pid)}

        def step(_elapsed: float) -> float:
            bare.pump(0)
            return 0.05

        out: dict[str, list[float]] = {name: [] for name in watched}
        for _ in range(windows):
            for name, value in cpu_while(watched, seconds, step, term).items():
                out[name].append(value)
        return out
    finally:
        bare.close()


def idle_only(server: RedisServer, windows: int, seconds: float) -> None:
    """Just the fleet dashboard's idle CPU beside the bare app's, window by window (for tuning the idle path)."""
    term = Terminal(server.url)
    try:
        term.wait_for(f"{FLEET} exp".encode(), timeout=180)
        term.drain(3.0)
        figures = idle_beside_bare(term, {"dashboard": psutil.Process(term.proc.pid)}, windows, seconds)
    finally:
        term.close()
    for name, values in figures.items():
        print(f"{name:<10} CPU idle, {windows} windows of {seconds:.0f} s: median {statistics.median(values):.2f} %  "
              f"({' '.join(f'{v:.2f}' for v in values)})")
    # The bare app's median is often 0 (CPU time counts in 10 ms ticks: 0.17 % of a 6 s window): compare the means.
    bare = statistics.mean(figures["bare"])
    print(f"ratio of the means, dashboard / bare app: {statistics.mean(figures['dashboard']) / bare:.0f}x" if bare else
          "ratio: the bare app used no measurable CPU")


def paced(rate: float, change):
    """A step function doing ``change(k)`` ``rate`` times a second; returns how long to wait."""
    done = [0]

    def step(elapsed: float) -> float:
        while done[0] < elapsed * rate:
            change(done[0])
            done[0] += 1
        return max(0.0, min(0.01, (done[0] / rate) - elapsed))

    step.count = done  # type: ignore[attr-defined]
    return step


@dataclass
class Latencies:
    screen: list[float] = field(default_factory=list)
    """File replaced -> the new value on the dashboard's screen (ms)."""
    agent: list[float] = field(default_factory=list)
    """File replaced -> the record's event in the hub's stream (ms): the agent's share."""
    floor: list[float] = field(default_factory=list)
    """Raw XADD -> XREAD BLOCK round trips, one before each change (ms)."""


def change_latency(term: Terminal, floor: StreamFloor, samples: int, path_of, prefix: str) -> Latencies:
    """``samples`` changes to the state files ``path_of(i)`` (a marker in the name), each timed to the screen."""
    out = Latencies()
    for i in range(samples):
        out.floor.append(floor.sample_ms())
        marker = f"{prefix}{i:05d}"
        path = path_of(i)
        host = path.parent.name
        floor.event_at.clear()
        started = rewrite(path, name=marker)
        out.screen.append((term.wait_for(marker.encode(), timeout=10) - started) * 1000)
        event_at = floor.event_at.get(f"expwatch:exp:{host}:{host}:{path.stem}")
        if event_at is not None:
            out.agent.append((event_at - started) * 1000)
        term.drain(0.3)  # apart, as single changes (a burst would be drawn as one)
    return out


def used_memory(client) -> int:
    return int(client.info("memory")["used_memory"])


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout:.0f} s")
        time.sleep(0.2)


def hub_keys(client, pattern: str) -> int:
    return sum(1 for _ in client.scan_iter(match=pattern, count=1000))


def raw_fleet_read_s(url: str) -> float:
    from state.hub.schema import Hub

    hub = Hub(url)
    started = time.perf_counter()
    count = sum(len(batch) for batch in hub.scan_records())
    took = time.perf_counter() - started
    hub.close()
    if count != FLEET:
        raise RuntimeError(f"raw read found {count} records, not {FLEET}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer samples, shorter idle windows")
    parser.add_argument("--idle-only", action="store_true", help="only the dashboard's idle CPU beside a bare Textual app")
    parser.add_argument("--publish-fleet", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish_fleet:
        publish_fleet(args.publish_fleet[0], args.publish_fleet[1:])
        return
    if REDIS_SERVER is None:
        sys.exit("bench_hub: redis-server is not installed (apt-get install redis-server)")
    samples = 20 if args.quick else 50
    idle = 10.0 if args.quick else 30.0
    starts = 1 if args.quick else 3
    load_start = os.getloadavg()

    from runtime.liveness import identity_of

    work = Path(tempfile.mkdtemp(prefix="expwatch-bench-hub-"))
    os.environ["EXPWATCH_CONFIG"] = str(work / "config.toml")  # the user's preferences neither read nor written
    (work / "redis").mkdir()
    server = RedisServer(work / "redis").start()
    client = server.client()
    publisher = term = agent = floor = None
    try:
        owner = identity_of()  # this process owns every running experiment: alive while the benchmark runs
        dirs = [make_host_dir(work / "hosts" / host_name(i), owner) for i in range(HOSTS)]
        memory0 = used_memory(client)
        publisher = subprocess.Popen(
            [sys.executable, __file__, "--publish-fleet", server.url, *map(str, dirs)],
            cwd=ROOT, stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        ready, _, _ = select.select([publisher.stdout], [], [], 300)
        if not ready or publisher.stdout.readline().strip() != b"published":
            raise RuntimeError("the publisher did not publish the fleet within 300 s")
        wait_until(lambda: hub_keys(client, "expwatch:exp:*") == FLEET, 60, f"{FLEET} records in the hub")
        if args.idle_only:
            idle_only(server, 5 if args.quick else 9, 6.0)
            return
        memory1 = used_memory(client)
        keys = client.dbsize()
        stream = client.xlen("expwatch:events")
        record_sample = [k for _, k in zip(range(200), client.scan_iter(match="expwatch:exp:*", count=1000))]
        per_record = statistics.mean(client.memory_usage(k) for k in record_sample)

        # first full picture, beside the raw read of every record
        first, raw, local = [], [], []
        for _ in range(starts):
            raw.append(raw_fleet_read_s(server.url))
            for times, sources in ((first, server.url), (local, dirs)):
                t = Terminal(sources)
                times.append(t.wait_for(f"{FLEET} exp".encode(), timeout=120) - t.started)
                t.close()

        floor = StreamFloor(server)
        term = Terminal(server.url)
        term.wait_for(f"{FLEET} exp".encode(), timeout=120)
        term.drain(3.0)
        procs = {"dashboard": psutil.Process(term.proc.pid), "publisher": psutil.Process(publisher.pid),
                 "redis": psutil.Process(server.process.pid)}
        # In the status order the running experiments of the first hosts are the rows on screen: each
        # change is drawn in place.
        in_place = change_latency(term, floor, samples, lambda i: state_file(dirs[i % 2], (i // 2) % RUNNING), "ip")

        # dashboard CPU: idle, then under LOAD_RATE changes/s over the hosts' running experiments
        idle_figures = idle_beside_bare(term, procs, 3, idle / 3)
        idle_cpu = {name: statistics.median(values) for name, values in idle_figures.items()}

        def change(k: int) -> None:
            rewrite(state_file(dirs[k % HOSTS], (k // HOSTS) % RUNNING), heartbeat_at=datetime.now(timezone.utc), name=f"upd{k}")

        step = paced(LOAD_RATE, change)
        load_cpu = cpu_while(procs, 10.0, step, term)
        load_rate = step.count[0] / 10.0  # type: ignore[attr-defined]
        term.close()

        # newest first: a finished experiment of any host changes and moves to the top
        term = Terminal(server.url, "--sort", "updated")
        term.wait_for(f"{FLEET} exp".encode(), timeout=120)
        term.drain(3.0)
        moved = change_latency(term, floor, samples, lambda i: state_file(dirs[i % HOSTS], RUNNING + 10 + i // HOSTS), "mv")
        term.close()
        term = None
        publisher.send_signal(signal.SIGTERM)
        publisher.wait(30)
        publisher = None

        # one real agent process: 300 experiments, 8 simulated GPUs
        agent_dir = make_host_dir(work / "hosts" / "bench-agent", owner)
        agent = subprocess.Popen(
            [*EXPWATCH, "agent", str(agent_dir), "--hub", server.url, "--host-name", "bench-agent", "--simulate-gpus", str(GPUS)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        wait_until(lambda: hub_keys(client, "expwatch:exp:bench-agent:*") == EXPERIMENTS, 120, "the agent's records")
        wait_until(lambda: client.exists("expwatch:gpus:bench-agent"), 30, "the agent's GPU snapshot")
        time.sleep(3.0)  # past the first publication: what follows is the steady state
        agent_procs = {"agent": psutil.Process(agent.pid)}
        agent_idle = cpu_while(agent_procs, idle, lambda _e: 0.05)["agent"]

        def agent_change(k: int) -> None:
            rewrite(state_file(agent_dir, k % RUNNING), heartbeat_at=datetime.now(timezone.utc), name=f"upd{k}")

        agent_load = cpu_while(agent_procs, 10.0, paced(AGENT_RATE, agent_change))["agent"]
    finally:
        if floor is not None:
            floor.close()
        if term is not None:
            term.close()
        for proc in (publisher, agent):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    load_end = os.getloadavg()

    ms = lambda v: f"{v:.0f} ms"  # noqa: E731
    p50 = statistics.median(in_place.screen)
    rows = [
        ("change-to-screen p50 (file -> agent -> hub -> screen, row in place)", ms(p50),
         f"{statistics.median(in_place.floor):.2f} ms", f"<= {LATENCY_GOAL_MS:.0f} ms ({'met' if p50 <= LATENCY_GOAL_MS else 'missed'})"),
        ("change-to-screen p99", ms(percentile(in_place.screen, 0.99)), f"{percentile(in_place.floor, 0.99):.2f} ms", ""),
        ("  of which file -> event in the hub (the agent), p50", ms(statistics.median(in_place.agent)), "", ""),
        ("change-to-screen p50, --sort updated (the row moves to the top)", ms(statistics.median(moved.screen)),
         f"{statistics.median(moved.floor):.2f} ms", ""),
        ("change-to-screen p99, --sort updated", ms(percentile(moved.screen, 0.99)), f"{percentile(moved.floor, 0.99):.2f} ms", ""),
        (f"first full fleet picture ({FLEET} rows), spawn -> on screen", ms(statistics.median(first) * 1000),
         ms(statistics.median(raw) * 1000), ""),
        ("  peer: the same experiments from the 32 directories, locally", ms(statistics.median(local) * 1000), "", ""),
        (f"dashboard CPU idle, median of 3 x {idle / 3:.0f} s (leases, GPUs flowing); floor: bare Textual app beside it",
         f"{idle_cpu['dashboard']:.2f} %", f"{idle_cpu['bare']:.2f} %", ""),
        (f"dashboard CPU under {load_rate:.0f} changes/s", f"{load_cpu['dashboard']:.1f} %", "", ""),
        ("  publisher (32 agents) CPU idle / under load", f"{idle_cpu['publisher']:.0f} / {load_cpu['publisher']:.0f} %", "", ""),
        ("  redis-server CPU idle / under load", f"{idle_cpu['redis']:.1f} / {load_cpu['redis']:.1f} %", "", ""),
        ("Redis memory per experiment (used_memory delta / 9,600)", f"{(memory1 - memory0) / FLEET / 1024:.2f} KiB", "", ""),
        ("  one record hash (MEMORY USAGE, mean of 200)", f"{per_record / 1024:.2f} KiB", "", ""),
        ("  keys / events stream length", f"{keys} / {stream}", "", ""),
        (f"agent CPU per host idle over {idle:.0f} s (300 exp, 8 GPUs)", f"{agent_idle:.2f} %", "", ""),
        (f"agent CPU per host under {AGENT_RATE:.0f} changes/s", f"{agent_load:.1f} %", "", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{HOSTS} hosts x {GPUS} GPUs x {EXPERIMENTS} experiments; {samples} latency samples; floor: "
          "raw XADD -> XREAD BLOCK (latency), raw SCAN + HMGET of every record (first picture)")
    print(f"{'measure':<{width}}  {'value':>12}  {'floor':>10}  goal")
    print("-" * (width + 40))
    for name, value, floor_text, goal in rows:
        print(f"{name:<{width}}  {value:>12}  {floor_text:>10}  {goal}")
    print(f"load average at start {' '.join(f'{x:.2f}' for x in load_start)}, at end {' '.join(f'{x:.2f}' for x in load_end)}")


if __name__ == "__main__":
    main()
