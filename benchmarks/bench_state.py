"""Benchmark of the state store: scans of a large directory and save latency.

Prints a table of medians (and p50/p99 for saves) against the goals:
full warm scan of 10,000 files <= 0.5 s, rescan with one changed file <= 30 ms,
durable save p99 <= 5 ms on local disk. Not a test: run it by hand,

    .venv/bin/python benchmarks/bench_state.py [--files 10000] [--reps 7] [--saves 500] [--dir PATH]

"Cold" is a new store (nothing cached in the process); the OS page cache is
left as it is, since dropping it would disturb everything else on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from state import ExperimentStatus, StateStore  # noqa: E402
from state.lem import LemExperimentState, LemV2ExperimentState, ProcessProgress  # noqa: E402
from state.native import ExperimentDoc, RunRecord, RunStatus  # noqa: E402
from state.transitions import ExperimentPhase, ProcessStatus  # noqa: E402

STATUSES = list(ExperimentStatus)


def make_state(i: int):
    """A realistic mix: mostly llenergymeasure v1 with per-process progress, some v2 and native."""
    started = datetime(2025, 3, 1) + timedelta(minutes=i)
    kind = i % 10
    if kind < 7:
        return LemExperimentState(
            experiment_id=f"exp-{i:05d}",
            status=STATUSES[i % len(STATUSES)],
            cycle_id=i % 3,
            config_path=f"configs/model-{i % 17}.yaml",
            config_hash=f"{i % 997:016x}",
            model_name=f"org/model-{i % 17}",
            prompt_args={"dataset": "alpaca", "sample_size": 100},
            num_processes=4,
            subprocess_pid=10_000 + i,
            process_progress={
                p: ProcessProgress(process_index=p, status=list(ProcessStatus)[(i + p) % 4], gpu_id=p, started_at=started)
                for p in range(4)
            },
            started_at=started,
            last_updated=started + timedelta(seconds=30),
        )
    if kind < 9:
        return LemV2ExperimentState(
            experiment_id=f"exp-{i:05d}",
            phase=list(ExperimentPhase)[i % 3],
            config_hash=f"{i % 997:016x}",
            started_at=started,
            last_updated=started,
            subprocess_pid=10_000 + i,
        )
    aware = started.astimezone()
    return ExperimentDoc(
        experiment_id=f"exp-{i:05d}",
        status=STATUSES[i % len(STATUSES)],
        config={"model": f"org/model-{i % 17}", "batch_size": [1, 2, 4, 8]},
        config_hash=f"{i % 997:016x}",
        runs=[RunRecord(id_run=f"r{r}", index=r, params={"batch_size": 2**r}, status=RunStatus.COMPLETED) for r in range(4)],
        created_at=aware,
        last_updated=aware,
    )


def populate(directory: Path, count: int) -> None:
    for i in range(count):
        (directory / f"exp-{i:05d}.json").write_text(make_state(i).to_json())


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def percentile_ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def rewrite(path: Path, n: int) -> None:
    """Change one file as llenergymeasure does: write a sibling temp file, rename it over."""
    raw = json.loads(path.read_text())
    raw["cycle_id" if "cycle_id" in raw else "last_updated"] = (
        n if "cycle_id" in raw else raw["last_updated"]
    )
    raw["error_message"] = f"edit {n}"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(raw, indent=2))
    os.replace(tmp, path)


def run(directory: Path, files: int, reps: int, saves: int) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    t0 = time.perf_counter()
    populate(directory, files)
    print(f"created {files} files in {time.perf_counter() - t0:.1f}s under {directory}", file=sys.stderr)

    cold = []
    for _ in range(reps):
        store = StateStore(directory, read_only=True)
        cold.append(timed(store.scan))
    assert len(store.entries) == files, len(store.entries)
    rows.append((f"cold scan, {files} files (new store)", f"{median_ms(cold):.0f} ms", "-", "-"))

    warm = [timed(store.scan) for _ in range(reps)]
    rows.append((f"warm scan, {files} files, no change", f"{median_ms(warm):.0f} ms", "<= 500 ms", ok(median_ms(warm) <= 500)))

    one_scan, one_refresh = [], []
    for rep in range(reps):
        victim = directory / f"exp-{(rep * 7919) % files:05d}.json"
        rewrite(victim, rep)
        start = time.perf_counter()
        delta = store.scan()
        one_scan.append(time.perf_counter() - start)
        assert delta.changed == (victim.stem,), delta
        rewrite(victim, rep + 1000)
        start = time.perf_counter()
        delta = store.refresh([victim.name])
        one_refresh.append(time.perf_counter() - start)
        assert delta.changed == (victim.stem,), delta
    rows.append(("rescan, 1 changed file: scan()", f"{median_ms(one_scan):.1f} ms", "<= 30 ms", ok(median_ms(one_scan) <= 30)))
    rows.append(("rescan, 1 changed file: refresh([name])", f"{median_ms(one_refresh):.2f} ms", "<= 30 ms", ok(median_ms(one_refresh) <= 30)))

    writer = StateStore(directory, durable=True)
    writer.scan()
    loaded = writer.load("exp-00000")
    model, version = loaded.model, loaded.version
    save_p50, save_p99 = [], []
    for _ in range(reps):
        series = []
        for _ in range(saves):
            start = time.perf_counter()
            saved = writer.save(model, expected=version)
            series.append(time.perf_counter() - start)
            model, version = saved.model, saved.version
        save_p50.append(percentile_ms(series, 0.5))
        save_p99.append(percentile_ms(series, 0.99))
    p50, p99 = statistics.median(save_p50), statistics.median(save_p99)
    label = f"durable save (CAS), {reps}x{saves}"
    rows.append((f"{label}: p50", f"{p50:.2f} ms", "-", "-"))
    rows.append((f"{label}: p99", f"{p99:.2f} ms", "<= 5 ms", ok(p99 <= 5)))
    rows.append((f"{label}: worst series p99", f"{max(save_p99):.2f} ms", "-", "-"))

    update_times = [timed(lambda: writer.update("exp-00001", lambda m: m)) for _ in range(saves)]
    rows.append((f"durable update (locked RMW), {saves}x: p50", f"{percentile_ms(update_times, 0.5):.2f} ms", "-", "-"))
    rows.append((f"durable update (locked RMW), {saves}x: p99", f"{percentile_ms(update_times, 0.99):.2f} ms", "-", "-"))
    return rows


def ok(passed: bool) -> str:
    return "ok" if passed else "MISSED"


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    headers = ("measure", "result", "goal", "")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print(line)
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=7, help="repetitions per scan measure (median)")
    parser.add_argument("--saves", type=int, default=500)
    parser.add_argument("--dir", type=Path, help="where to create the state directory (default: a temp dir)")
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="bench-state-", dir=args.dir))
    try:
        directory = base / ".state"
        directory.mkdir()
        rows = run(directory, args.files, args.reps, args.saves)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {load:.2f}, medians of {args.reps} runs")
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
