"""Scale figures: 100,000 experiment files, one experiment with 100,000 runs, the dashboard on both.

- StateStore cold scan (new store, new process) and warm scan (nothing changed) of
  100k llenergymeasure v1 files, and the peak RSS of the scanning process
  (``resource.getrusage(...).ru_maxrss`` measured in a child process);
- one expwatch-format experiment (``ExperimentDoc``) with 100k ``RunRecord``:
  file size as the runner writes it, ``parse_state`` and ``summarize`` time;
- ``expwatch DIR`` on a pty over the 100k files: time to the first rows on
  screen, time until the header counts ``100000 exp``, RSS after the load and
  idle CPU.

Generated data lives in a temp dir and is deleted afterwards. Prints a table
(median of the repeats) with the goal beside each figure. Run:

    .venv/bin/python benchmarks/bench_scale.py [--quick] [--files 100000] [--runs 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import psutil  # noqa: E402

from state.sources.directory import READ_DUTY  # noqa: E402
from state.detect import MAX_STATE_FILE_BYTES, parse_state, read_record, summarize  # noqa: E402
from state.native import INDENT_RUNS_UP_TO, ExperimentDoc, RunRecord, RunStatus  # noqa: E402
from state.record import FileVersion  # noqa: E402

STATUSES = ("completed", "failed", "interrupted", "aggregated", "running", "initialised")


def generate_lem_files(root: Path, n: int, *, shared_hash: bool = False) -> float:
    """n llenergymeasure v1 files, text as their StateManager writes it (one template, ids filled in);
    ``shared_hash``: all with one config hash, as the cycles of one llenergymeasure config have."""
    started = time.perf_counter()
    base = datetime(2025, 3, 1, 12, 0, 0)
    template = json.dumps(
        {
            "experiment_id": "@ID@",
            "status": "@STATUS@",
            "cycle_id": 0,
            "config_path": "configs/bench.yaml",
            "config_hash": "@HASH@",
            "model_name": "org/bench-model",
            "prompt_args": {"dataset": "alpaca", "sample_size": 100},
            "num_processes": 2,
            "subprocess_pid": None,
            "process_progress": {
                "0": {"process_index": 0, "status": "completed", "gpu_id": 0, "started_at": "@T0@",
                      "completed_at": "@T1@", "error_message": None},
                "1": {"process_index": 1, "status": "completed", "gpu_id": 1, "started_at": "@T0@",
                      "completed_at": "@T1@", "error_message": None},
            },
            "started_at": "@T0@",
            "last_updated": "@T1@",
            "error_message": None,
            "completed_runs": {},
            "failed_runs": {},
            "total_runs": 0,
        },
        indent=2,
    )
    for i in range(n):
        t0 = (base + timedelta(seconds=i)).isoformat()
        t1 = (base + timedelta(seconds=i + 60)).isoformat()
        ident = f"exp-{i:06d}"
        text = (template.replace("@ID@", ident).replace("@STATUS@", STATUSES[i % len(STATUSES)])
                .replace("@HASH@", "0" * 16 if shared_hash else f"{i:016x}").replace("@T0@", t0).replace("@T1@", t1))
        fd = os.open(root / f"{ident}.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    return time.perf_counter() - started


_SCAN_CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[2])
from state.store import StateStore
store = StateStore(sys.argv[1], read_only=True)
t0 = time.perf_counter(); delta = store.scan(); cold = time.perf_counter() - t0
warm = []
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter(); again = store.scan(); warm.append(time.perf_counter() - t0)
    assert not again
print(json.dumps({"cold": cold, "warm": sorted(warm)[len(warm) // 2], "added": len(delta.added),
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def scan_in_child(root: Path, warm_reps: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", _SCAN_CHILD, str(root), str(ROOT), str(warm_reps)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def big_experiment(runs: int) -> ExperimentDoc:
    now = datetime(2025, 3, 1, 12, 0, 0, 123456).astimezone()  # microseconds, as the runner writes
    records = [
        RunRecord(
            id_run=f"r{i:06d}", index=i, params={"batch_size": 2 ** (i % 6), "precision": ("fp16", "bf16")[i % 2]},
            fields={"energy_j": 12.5 + i % 7, "tokens_per_s": 900 + i % 50},
            status=RunStatus.COMPLETED if i % 10 else RunStatus.PENDING, process_index=i % 4,
            started_at=now, completed_at=now if i % 10 else None,
        )
        for i in range(runs)
    ]
    return ExperimentDoc(experiment_id="big", status="running", runs=records, num_processes=4,
                         started_at=now, last_updated=now)


def bench_big_doc(runs: int, reps: int) -> list[tuple[str, str, str]]:
    """The file as the runner writes it, then each reader's cost: the scan's row, the full load."""
    doc = big_experiment(runs)
    rows: list[tuple[str, str, str]] = []
    dumps = []
    for _ in range(reps):
        t0 = time.perf_counter()
        data = doc.to_json().encode()
        dumps.append(time.perf_counter() - t0)
    rows.append((f"{runs} runs: file size as written (compact past {INDENT_RUNS_UP_TO} runs)",
                 f"{len(data) / 2**20:.1f} MiB", f"<= {MAX_STATE_FILE_BYTES // 2**20} MiB (size limit)"))
    rows.append((f"{runs} runs: serialise (the runner's write, before fsync)", f"{statistics.median(dumps) * 1000:.0f} ms", ""))
    version = FileVersion(1, 1, len(data))
    scans, loads = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        row = read_record("big", Path("big.json"), version, data)
        scans.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fmt, model = parse_state(data)
        summarize("big", Path("big.json"), version, fmt, model)
        loads.append(time.perf_counter() - t0)
    assert row.runs_total == runs
    rows.append((f"{runs} runs: scan row (read_record: runs counted)", f"{statistics.median(scans) * 1000:.0f} ms", ""))
    rows.append((f"{runs} runs: full load (parse_state: every run validated)", f"{statistics.median(loads) * 1000:.0f} ms", ""))
    rows.append((f"{runs} runs: watcher re-reads it at most every", f"{statistics.median(scans) / READ_DUTY:.1f} s",
                 f"{READ_DUTY:.0%} of a core at most"))
    return rows


def bench_dashboard(root: Path, n: int, idle_seconds: float) -> dict[str, float]:
    from bench_dashboard import Terminal

    term = Terminal(root)
    try:
        seen = term.wait_for(b"exp-0", timeout=120)
        first = seen - term.started
        done = term.wait_for(f"{n} exp".encode(), timeout=300)
        full = done - term.started
        ps = psutil.Process(term.proc.pid)
        term.drain(3.0)
        rss = ps.memory_info().rss
        cpu0 = ps.cpu_times()
        t0 = time.perf_counter()
        term.drain(idle_seconds)
        elapsed = time.perf_counter() - t0
        cpu1 = ps.cpu_times()
        idle = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed * 100
    finally:
        term.close()
    return {"first": first, "full": full, "rss_mb": rss / 2**20, "idle_cpu": idle}


def bench_files(files: int, reps: int, idle: float, *, dashboard: bool) -> list[tuple[str, str, str]]:
    """Scan and dashboard figures over ``files`` generated llenergymeasure files."""
    rows: list[tuple[str, str, str]] = []
    root = Path(tempfile.mkdtemp(prefix="expwatch-scale-"))
    try:
        made = generate_lem_files(root, files)
        print(f"generated {files} files in {made:.1f}s under {root}", file=sys.stderr)
        scans = [scan_in_child(root, 5) for _ in range(reps)]
        assert all(s["added"] == files for s in scans), scans
        k = f"{files // 1000}k"
        rows.append((f"cold scan, {k} files (new process)", f"{statistics.median(s['cold'] for s in scans):.2f} s", ""))
        rows.append((f"warm scan, {k} files, nothing changed", f"{statistics.median(s['warm'] for s in scans) * 1000:.0f} ms", ""))
        rows.append((f"peak RSS of a process scanning {k} files", f"{statistics.median(s['maxrss_kb'] for s in scans) / 1024:.0f} MB", ""))
        if dashboard:
            dash = [bench_dashboard(root, files, idle) for _ in range(reps)]
            rows.append((f"dashboard: first rows on screen, {k} files", f"{statistics.median(d['first'] for d in dash):.2f} s", "<= 8 s"))
            rows.append((f"dashboard: header shows '{files} exp'", f"{statistics.median(d['full'] for d in dash):.2f} s", ""))
            rows.append((f"dashboard: RSS after load, {k} files", f"{statistics.median(d['rss_mb'] for d in dash):.0f} MB", "<= 400 MB"))
            rows.append((f"dashboard: idle CPU over {idle:.0f} s, {k} files", f"{statistics.median(d['idle_cpu'] for d in dash):.2f} %", "<= 1 %"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, 10 s idle window")
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--no-dashboard", action="store_true", help="skip the pty dashboard figures")
    parser.add_argument("--runs-only", action="store_true", help="only the one-experiment-with-many-runs figures")
    args = parser.parse_args()
    reps = 1 if args.quick else 3
    idle = 10.0 if args.quick else 30.0
    rows = [] if args.runs_only else bench_files(args.files, reps, idle, dashboard=not args.no_dashboard)
    rows += bench_big_doc(args.runs, reps)
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>14}  goal")
    print("-" * (width + 30))
    for name, value, goal in rows:
        print(f"{name:<{width}}  {value:>14}  {goal}")


if __name__ == "__main__":
    main()
