"""The same study through expwatch's runner and through MLtraq, side by side, with the ratio.

One step that records one float field, a grid of N runs, one process: ``expwatch run``
(state file written as it goes) against MLtraq's ``execute(n_jobs=1)`` then
``persist()`` into SQLite. Each is a whole new process, from spawn to exit
(interpreter start and imports included on both sides), median of the repeats.

MLtraq is installed into a throwaway virtual environment (tests/mltraq/generate.py's,
cached under ~/.cache/expwatch), never into expwatch's own.

    .venv/bin/python benchmarks/bench_vs_mltraq.py [--quick] [--runs 10000 100000] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def wall(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} ... failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return took


def expwatch_run(runs: int) -> float:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory(prefix="bench-vs-mltraq-") as tmp:
        folder = Path(tmp)
        (folder / "study.py").write_text(EXPWATCH_STUDY % runs)
        return wall([sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())",
                     "run", "study.py", "--state-dir", "state", "--id", "bench", "-p", "1"], folder, env)


def mltraq_run(python: Path, runs: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-vs-mltraq-") as tmp:
        folder = Path(tmp)
        (folder / "study.py").write_text(MLTRAQ_STUDY)
        return wall([str(python), "study.py", str(folder / "bench.db"), str(runs)], folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 runs only, one repeat")
    parser.add_argument("--runs", type=int, nargs="+", default=None, help="grid sizes (default 10000 100000)")
    parser.add_argument("--reps", type=int, default=None, help="repeats at 10,000 runs (default 3; one at 100,000)")
    parser.add_argument("--venv", type=Path, default=default_venv(), help="the throwaway environment holding MLtraq")
    args = parser.parse_args()
    sizes = args.runs or ([10_000] if args.quick else [10_000, 100_000])
    reps = args.reps or (1 if args.quick else 3)
    try:
        python = ensure_venv(args.venv)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"MLtraq ({MLTRAQ}) could not be installed into {args.venv}: {exc}", file=sys.stderr)
        return 1
    rows = []
    for runs in sizes:
        n = reps if runs <= 10_000 else 1
        ours = statistics.median(expwatch_run(runs) for _ in range(n))
        theirs = statistics.median(mltraq_run(python, runs) for _ in range(n))
        goal = GOALS.get(runs)
        ratio = theirs / ours
        met = "" if goal is None else ("yes" if ratio >= goal else "no")
        rows.append((f"{runs:,} runs, one float field, 1 process", f"{ours:.2f} s", f"{theirs:.2f} s",
                     f"{ratio:.1f}x", f">= {goal:g}x" if goal else "", met))
    head = ("study", "expwatch run", f"MLtraq {MLTRAQ.split('==')[1]}", "MLtraq / expwatch", "goal", "met")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
