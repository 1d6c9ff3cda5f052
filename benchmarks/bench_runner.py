"""Runner benchmarks: per-run overhead, state-file latency, write rate. Prints a table of medians.

    .venv/bin/python benchmarks/bench_runner.py [--repeats 3] [--runs 20000] [--quick]

1. Overhead: a study whose only step does nothing, run by ``expwatch run`` as a
   real process. Throughput per worker process = runs / (last run end - first
   run start) / processes (process start-up excluded; wall time shown too).
   Goal: >= 2,000 runs/s per worker process.
2. Latency: runs that each sleep a little; a poller stats the state file every
   2 ms and notes when each run first shows as completed. Delay = that moment
   minus the run's own ``completed_at`` (same host clock). Goal: <= 0.5 s.
   Measured on a small experiment and on a 10,000-run one (a 4 MB state file).
3. Writes per second during those runs (the file's revision counter over the
   run's duration): coalescing keeps it to a few per second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EMPTY_STUDY = """
def nothing(run):
    pass

steps = [nothing]
grid = {"i": range(%d)}
"""

SLEEPY_STUDY = """
import time

def work(run):
    time.sleep(%f)
    run.fields.i = run.params.i

steps = [work]
grid = {"i": range(%d)}
"""


def _run_cli(args: list[str], cwd: Path) -> float:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())", *args],
        cwd=cwd, env=env, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"expwatch {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return time.perf_counter() - started


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def overhead(runs: int, processes: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
        folder = Path(tmp)
        (folder / "empty.py").write_text(EMPTY_STUDY % runs)
        wall = _run_cli(["run", "empty.py", "--state-dir", "state", "--id", "b", "-p", str(processes)], folder)
        doc = json.loads((folder / "state" / "b.json").read_text())
        first = min(_parse_time(r["started_at"]) for r in doc["runs"])
        last = max(_parse_time(r["completed_at"]) for r in doc["runs"])
        assert all(r["status"] == "completed" for r in doc["runs"])
        span = max(last - first, 1e-9)
        return {
            "per_worker": runs / span / processes,
            "total": runs / span,
            "wall": wall,
            "writes": doc["revision"],
            "writes_per_s": doc["revision"] / span,
        }


class Poller(threading.Thread):
    """Stat the state file every 2 ms; on each new version note when each run first shows completed."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path = path
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.versions = 0

    def run(self) -> None:
        last = None
        while not self.stop.is_set():
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                time.sleep(0.002)
                continue
            version = (st.st_ino, st.st_mtime_ns, st.st_size)
            if version != last:
                noticed = time.time()
                last = version
                try:
                    doc = json.loads(self.path.read_bytes())
                except ValueError:
                    continue
                self.versions += 1
                for rec in doc["runs"]:
                    if rec["status"] == "completed" and rec["id_run"] not in self.seen:
                        self.seen[rec["id_run"]] = noticed
            time.sleep(0.002)


def latency(runs: int, step_s: float, processes: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
        folder = Path(tmp)
        (folder / "sleepy.py").write_text(SLEEPY_STUDY % (step_s, runs))
        poller = Poller(folder / "state" / "lat.json")
        poller.start()
        _run_cli(["run", "sleepy.py", "--state-dir", "state", "--id", "lat", "-p", str(processes)], folder)
        time.sleep(0.05)
        poller.stop.set()
        poller.join()
        doc = json.loads((folder / "state" / "lat.json").read_text())
        delays = []
        for rec in doc["runs"]:
            seen = poller.seen.get(rec["id_run"])
            if seen is not None:
                delays.append(seen - _parse_time(rec["completed_at"]))
        first = min(_parse_time(r["started_at"]) for r in doc["runs"])
        last = max(_parse_time(r["completed_at"]) for r in doc["runs"])
        delays.sort()
        return {
            "median": statistics.median(delays),
            "p95": delays[int(0.95 * (len(delays) - 1))],
            "max": delays[-1],
            "writes_per_s": doc["revision"] / max(last - first, 1e-9),
            "size_mb": (folder / "state" / "lat.json").stat().st_size / 1e6,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20000, help="runs in the overhead experiment")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one repeat")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    runs = 4000 if args.quick else args.runs
    big = 2000 if args.quick else 10000

    def med(samples: list[dict[str, float]], key: str) -> float:
        return statistics.median(s[key] for s in samples)

    rows = []
    for processes in (1, 2):
        samples = [overhead(runs, processes) for _ in range(repeats)]
        rows.append((
            f"overhead, empty steps, {runs} runs, {processes} proc",
            f"{med(samples, 'per_worker'):,.0f} runs/s per worker ({med(samples, 'total'):,.0f} total)",
            ">= 2,000 runs/s per worker",
            f"wall {med(samples, 'wall'):.2f} s incl. start-up, {med(samples, 'writes'):.0f} state writes",
        ))
    for label, n, step, procs in (("small", 100, 0.02, 2), ("10,000-run sweep", big, 0.0005, 2)):
        samples = [latency(n, step, procs) for _ in range(repeats)]
        rows.append((
            f"state latency, {label} ({n} runs x {step * 1000:g} ms, {procs} proc)",
            f"median {med(samples, 'median') * 1000:.0f} ms, p95 {med(samples, 'p95') * 1000:.0f} ms, "
            f"max {med(samples, 'max') * 1000:.0f} ms",
            "<= 500 ms",
            f"{med(samples, 'writes_per_s'):.1f} writes/s, file {med(samples, 'size_mb'):.1f} MB",
        ))
    widths = [max(len(r[i]) for r in rows + [("measure", "result", "goal", "notes")]) for i in range(4)]
    header = ("measure", "result", "goal", "notes")
    print(f"runner benchmark (medians of {repeats}; {os.cpu_count()} CPUs)")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    main()
