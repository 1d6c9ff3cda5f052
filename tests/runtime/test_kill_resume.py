"""SIGKILL at random moments, then mark-stale and resume: nothing completed runs twice, nothing is lost.

Thirty short trials (a coordinator or a worker killed; a third of them killed
twice, the second time in the resumed runner), three at a time. See
``killtrial.py`` for what each trial checks; ``benchmarks/stress_runner.py``
runs more and longer ones.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.runtime.killtrial import TrialReport, run_trial

TRIALS = 30
PARALLEL = 3


def test_thirty_random_sigkills_then_resume(tmp_path: Path):
    def one(seed: int) -> TrialReport:
        workdir = tmp_path / f"trial-{seed}"
        workdir.mkdir()
        return run_trial(workdir, seed, kills=2 if seed % 3 == 2 else 1)

    with ThreadPoolExecutor(PARALLEL) as pool:
        reports = list(pool.map(one, range(TRIALS)))
    problems = [f"seed {r.seed} (kills {r.kills}): {p}" for r in reports for p in r.problems]
    assert problems == []
    hits = [k for r in reports for k in r.kills if "already gone" not in k]
    assert sum(k == "coordinator" for k in hits) >= 5, hits
    assert sum(k.startswith("worker") for k in hits) >= 5, hits
    assert sum(r.resumes for r in reports) >= 10
