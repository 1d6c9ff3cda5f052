"""The same study through expwatch's runner and through MLtraq, side by side, with the ratio.

One step that records one float field, a grid of N runs, one process: ``expwatch run``
(state file written as it goes) against MLtraq's ``execute(n_jobs=1)`` then
``persist()`` into SQLite. Each is a whole new process, from spawn to exit
(interpreter start and imports included on both sides), median of the repeats.
The two sides take turns (expwatch, MLtraq, expwatch, ...), so a change of the
machine's load falls on both; besides wall time each side's CPU time (its
process and every child it waited for) is printed, which the other users of a
shared machine move much less. The load average is printed before and after.

MLtraq is installed into a throwaway virtual environment (tests/mltraq/generate.py's,
cached under ~/.cache/expwatch), never into expwatch's own.

    .venv/bin/python benchmarks/bench_vs_mltraq.py [--quick] [--runs 10000 100000] [--reps 3] [--large-reps 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.mltraq.generate import MLTRAQ, default_venv, ensure_venv  # noqa: E402

EXPWATCH_STUDY = """
def record(run):
    run.fields.x = run.params.i * 0.5

steps = [record]
grid = {"i": range(%d)}
"""

MLTRAQ_STUDY = """
import sys
import mltraq
from mltraq import options

options().set("tqdm.disable", True)


def record(run):
    run.fields.x = run.params.i * 0.5


session = mltraq.create_session(f"sqlite:///{sys.argv[1]}")
experiment = session.create_experiment("bench")
experiment.add_runs(i=range(int(sys.argv[2])))
experiment.execute(record, n_jobs=1)
experiment.persist()
"""

#: runs -> how far ahead expwatch must stay (the issue's goals).
GOALS = {10_000: 3.0, 100_000: 5.0}


class Took(NamedTuple):
    wall: float
    cpu: float
    """User + system seconds of the process and the children it waited for (the runner's workers)."""


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> Took:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} ... failed ({done.returncode}):\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Took(took, cpu)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def expwatch_run(runs: int) -> Took:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory(prefix="bench-vs-mltraq-") as tmp:
        folder = Path(tmp)
        (folder / "study.py").write_text(EXPWATCH_STUDY % runs)
        return timed([sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())",
                     "run", "study.py", "--state-dir", "state", "--id", "bench", "-p", "1"], folder, env)


def mltraq_run(python: Path, runs: int) -> Took:
    with tempfile.TemporaryDirectory(prefix="bench-vs-mltraq-") as tmp:
        folder = Path(tmp)
        (folder / "study.py").write_text(MLTRAQ_STUDY)
        return timed([str(python), "study.py", str(folder / "bench.db"), str(runs)], folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 runs only, one repeat")
    parser.add_argument("--runs", type=int, nargs="+", default=None, help="grid sizes (default 10000 100000)")
    parser.add_argument("--reps", type=int, default=None, help="repeats at 10,000 runs (default 3; one at 100,000)")
    parser.add_argument("--large-reps", type=int, default=1, help="repeats above 10,000 runs (default 1)")
    parser.add_argument("--venv", type=Path, default=default_venv(), help="the throwaway environment holding MLtraq")
    args = parser.parse_args()
    sizes = args.runs or ([10_000] if args.quick else [10_000, 100_000])
    reps = args.reps or (1 if args.quick else 3)
    try:
        python = ensure_venv(args.venv)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"MLtraq ({MLTRAQ}) could not be installed into {args.venv}: {exc}", file=sys.stderr)
        return 1
    print(f"load average before: {loadavg()}")
    rows = []
    for runs in sizes:
        n = reps if runs <= 10_000 else args.large_reps
        ours: list[Took] = []
        theirs: list[Took] = []
        for _ in range(n):
            ours.append(expwatch_run(runs))
            theirs.append(mltraq_run(python, runs))
        our_wall, their_wall = (statistics.median(t.wall for t in side) for side in (ours, theirs))
        our_cpu, their_cpu = (statistics.median(t.cpu for t in side) for side in (ours, theirs))
        goal = GOALS.get(runs)
        ratio = their_wall / our_wall
        met = "" if goal is None else ("yes" if ratio >= goal else "no")
        rows.append((f"{runs:,} runs, one float field, 1 process", f"{our_wall:.2f} s", f"{their_wall:.2f} s",
                     f"{ratio:.1f}x", f"{our_cpu:.2f} s", f"{their_cpu:.2f} s", f"{their_cpu / our_cpu:.1f}x",
                     f">= {goal:g}x" if goal else "", met))
    version = MLTRAQ.split("==")[1]
    head = ("study", "expwatch run", f"MLtraq {version}", "ratio (wall)", "expwatch CPU", "MLtraq CPU",
            "ratio (CPU)", "goal", "met (wall)")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    print(f"load average after: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
