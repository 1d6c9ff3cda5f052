"""Stress the runner: many SIGKILLs at random moments, each followed by mark-stale and resume.

    .venv/bin/python benchmarks/stress_runner.py [--trials 200] [--kills 3] [--runs 40] [--parallel 3]

Each trial runs a real ``expwatch run``, SIGKILLs the coordinator or a worker
(up to ``--kills`` times, later ones in the resumed runner), recovers with
mark-stale and resume, and checks that every run completed, that no run
recorded as completed ran again, and that no persisted field was lost (see
tests/runtime/killtrial.py). Prints a summary table; exits 1 on any problem.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.runtime.killtrial import TrialReport, run_trial  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--kills", type=int, default=3, help="kills per trial (at most)")
    parser.add_argument("--runs", type=int, default=40, help="runs per experiment")
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=3, help="trials at once")
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="stress-runner-") as tmp:
        def one(n: int) -> TrialReport:
            workdir = Path(tmp) / f"trial-{n}"
            workdir.mkdir()
            kills = 1 + n % args.kills
            return run_trial(
                workdir, args.seed + n, runs=args.runs, processes=args.processes, kills=kills,
                step_s=(0.01, 0.08), max_delay_s=0.8, timeout=120.0,
            )

        with ThreadPoolExecutor(args.parallel) as pool:
            reports = list(pool.map(one, range(args.trials)))
    elapsed = time.monotonic() - started
    kinds = Counter(
        "missed (process already gone)" if "already gone" in k else ("coordinator" if k == "coordinator" else "worker")
        for r in reports for k in r.kills
    )
    problems = [f"seed {r.seed} kills {r.kills}: {p}" for r in reports for p in r.problems]
    rows = [
        ("trials", f"{len(reports)} ({args.runs} runs x {args.processes} processes each)"),
        ("kills: coordinator", str(kinds["coordinator"])),
        ("kills: worker", str(kinds["worker"])),
        ("kills: missed", str(kinds["missed (process already gone)"])),
        ("resumes", str(sum(r.resumes for r in reports))),
        ("re-executions (runs in flight at a kill)", str(sum(r.reexecuted for r in reports))),
        ("runs completed then executed again", str(sum("executed again" in p for p in problems))),
        ("fields lost or changed", str(sum("fields" in p for p in problems))),
        ("runs not completed at the end", str(sum("not completed" in p for p in problems))),
        ("trial time (median / max)", f"{statistics.median(r.seconds for r in reports):.1f} s / "
                                       f"{max(r.seconds for r in reports):.1f} s"),
        ("total time", f"{elapsed:.0f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    print("runner stress: SIGKILL at random moments, mark-stale, resume")
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}")
    for line in problems[:20]:
        print(f"  PROBLEM {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
