"""CLI figures, each beside its floor measured in the same run, with the ratio printed.

- start-up: ``expwatch list`` on an empty directory against ``python -c pass``;
- ``expwatch list --json`` over 10,000 (and 100,000) llenergymeasure files, a new
  process each time with the page cache warm, against the floor: one process
  that reads the same files and ``json.loads`` each;
- the same files all sharing one config hash (llenergymeasure cycles do) against
  the distinct-hash case.

Every figure is the median of the repeats, wall time, with the process's CPU time
(user + system) beside it: on a shared machine the CPU ratio moves less with the
load than the wall ratio. The programs compared are run in turn, one of each per
round, so that the machine's drift weighs on each alike. Generated files live in a temp dir, removed afterwards.

    .venv/bin/python benchmarks/bench_cli.py [--quick] [--files 10000 100000] [--reps 9]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_dashboard import compile_bytecode  # noqa: E402
from bench_scale import generate_lem_files  # noqa: E402

EXPWATCH = ["-c", "import sys; from app.cli import main; sys.exit(main())"]
FLOOR = """
import json, os, sys
root = sys.argv[1]
for name in os.listdir(root):
    with open(os.path.join(root, name), "rb") as f:
        json.loads(f.read())
"""
STARTUP_GOAL_S = 0.12
FLOOR_RATIO_GOAL = 2.5
SHARED_RATIO_GOAL = 1.2


def _run_once(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one new Python process running ``argv``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed (exit {os.waitstatus_to_exitcode(status)})")
    return wall, usage.ru_utime + usage.ru_stime


def timed(argv: list[str], reps: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds) of a new Python process running ``argv``."""
    return timed_together([argv], reps)[0]


def timed_together(argvs: list[list[str]], reps: int) -> list[tuple[float, float]]:
    """``timed`` for each of ``argvs``, their runs taken in turn (one of each per round): a machine
    whose speed drifts during the run (a shared VM's does, by a third) weighs on each alike."""
    runs: list[list[tuple[float, float]]] = [[] for _ in argvs]
    for _ in range(reps):
        for argv, done in zip(argvs, runs):
            done.append(_run_once(argv))
    return [(statistics.median(w for w, _ in done), statistics.median(c for _, c in done)) for done in runs]


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


Row = tuple[str, str, str, str, str]


def compared(name: str, measured: tuple[float, float], floor: tuple[float, float], floor_name: str, goal: float) -> list[Row]:
    ratio, cpu_ratio = measured[0] / floor[0], measured[1] / floor[1]
    return [
        (name, fmt(measured[0]), fmt(measured[1]), "", ""),
        (f"  {floor_name}", fmt(floor[0]), fmt(floor[1]), "", ""),
        ("  ratio", f"{ratio:.2f}x", f"{cpu_ratio:.2f}x", f"<= {goal}x", "yes" if ratio <= goal else "no"),
    ]


def startup(reps: int) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="expwatch-empty-") as empty:
        timed([*EXPWATCH, "list", "--source", empty], 1)  # bytecode compiled, page cache warm
        bare, listed = timed_together([["-c", "pass"], [*EXPWATCH, "list", "--source", empty]], reps)
    met = "yes" if listed[0] <= STARTUP_GOAL_S else "no"
    return [
        ("`expwatch list`, empty directory", fmt(listed[0]), fmt(listed[1]), f"<= {fmt(STARTUP_GOAL_S)}", met),
        ("  `python -c pass`", fmt(bare[0]), fmt(bare[1]), "", ""),
        ("  ratio", f"{listed[0] / bare[0]:.1f}x", f"{listed[1] / bare[1]:.1f}x", "", ""),
    ]


def cold_list(files: int, reps: int) -> list[Row]:
    k = f"{files // 1000}k"
    rows: list[Row] = []
    distinct = Path(tempfile.mkdtemp(prefix=f"expwatch-cli-{k}-"))
    shared = Path(tempfile.mkdtemp(prefix=f"expwatch-cli-{k}-shared-"))
    try:
        generate_lem_files(distinct, files)
        generate_lem_files(shared, files, shared_hash=True)
        for root in (distinct, shared):
            timed([*EXPWATCH, "list", "--json", "--source", str(root)], 1)  # page cache warm
        floor, listed, same_hash = timed_together([
            ["-c", FLOOR, str(distinct)],
            [*EXPWATCH, "list", "--json", "--source", str(distinct)],
            [*EXPWATCH, "list", "--json", "--source", str(shared)],
        ], reps)
        rows += compared(f"`list --json`, {k} files, cold process", listed, floor, "floor: read + json.loads each, one process", FLOOR_RATIO_GOAL)
        rows += compared(f"`list --json`, {k} files, one shared config hash", same_hash, listed, "the distinct-hash case", SHARED_RATIO_GOAL)
    finally:
        shutil.rmtree(distinct, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 files only, 3 repeats")
    parser.add_argument("--files", type=int, nargs="+", default=None, help="directory sizes (default 10000 100000)")
    parser.add_argument("--reps", type=int, default=None, help="repeats per figure (default 9; --quick 3)")
    args = parser.parse_args()
    reps = args.reps or (3 if args.quick else 9)
    compile_bytecode(ROOT)  # a shell with PYTHONDONTWRITEBYTECODE would compile every changed module at every start
    sizes = args.files or ([10_000] if args.quick else [10_000, 100_000])
    rows = startup(max(reps, 5))
    for files in sizes:
        rows += cold_list(files, reps if files <= 10_000 else max(1, reps // 2))
    head = ("measure", "wall", "CPU", "goal", "met")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths))))
    print("-" * (sum(widths) + 8))
    for row in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


if __name__ == "__main__":
    main()
