"""One kill-and-resume trial: run a study, SIGKILL a runner process at a random moment, recover.

Used by ``test_kill_resume.py`` (many short trials) and ``benchmarks/stress_runner.py``
(more and longer ones). A trial checks the promises of the runner and of resume:

- every run ends completed;
- a run recorded as completed is never executed again (executions are counted
  through a side file each execution appends a line to);
- no persisted field of a completed run is lost or changed;
- every completed run's fields come from one of its real executions.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.actions import mark_stale_experiment, resume_experiment
from runtime.liveness import identity_of
from state.native import ExperimentDoc, OwnerIdentity, RunStatus
from state.store import StateStore
from state.transitions import ExperimentStatus

from tests.runtime.helpers import (
    COUNTING_STUDY,
    cli_env,
    completed_fields,
    executions,
    identity_gone,
    owners_gone,
    read_doc,
    start_expwatch,
    terminate_all,
    wait_for,
    write_study,
)

KEY = "trial"


@dataclass
class TrialReport:
    seed: int
    kills: list[str] = field(default_factory=list)
    resumes: int = 0
    reexecuted: int = 0
    """Executions beyond the first (runs that were in flight at a kill)."""
    runs: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def _running(state: Path) -> ExperimentDoc | None:
    doc = read_doc(state, KEY)
    if doc is None or doc.status is not ExperimentStatus.RUNNING or not doc.processes:
        return None
    if not all(p.owner is not None for p in doc.processes.values()):
        return None
    return doc


def _settle(state: Path, timeout: float) -> ExperimentDoc:
    """Wait until nobody runs the experiment; mark it stale if its owners died under it."""
    doc = wait_for(
        lambda: (d := read_doc(state, KEY)) and owners_gone(d) and d,
        timeout=timeout,
        what="every owner process gone",
    )
    if doc.status is ExperimentStatus.RUNNING:
        mark_stale_experiment(StateStore(state), KEY)
        doc = read_doc(state, KEY)
        assert doc is not None and doc.status is ExperimentStatus.INTERRUPTED
    return doc


def _kill_one(rng: random.Random, doc: ExperimentDoc) -> str:
    """SIGKILL the coordinator or one worker (checked to be the recorded process, never a reused PID)."""
    choices: list[tuple[str, OwnerIdentity]] = []
    if doc.owner is not None:
        choices.append(("coordinator", doc.owner))
    choices += [(f"worker {p.process_index}", p.owner) for p in doc.processes.values() if p.owner is not None]
    what, owner = rng.choice(choices)
    if identity_gone(owner):
        return f"{what} (already gone)"
    try:
        os.kill(owner.pid, signal.SIGKILL)
    except ProcessLookupError:
        return f"{what} (already gone)"
    return what


def run_trial(
    workdir: Path,
    seed: int,
    *,
    runs: int = 12,
    processes: int = 2,
    kills: int = 1,
    step_s: tuple[float, float] = (0.03, 0.08),
    max_delay_s: float = 0.4,
    timeout: float = 40.0,
) -> TrialReport:
    """Run one trial in ``workdir``; the report lists any broken promise in ``problems``."""
    started = time.monotonic()
    rng = random.Random(seed)
    report = TrialReport(seed=seed, runs=runs)
    state = workdir / "state"
    state.mkdir(parents=True, exist_ok=True)
    exec_log = workdir / "exec.log"
    study = write_study(workdir, COUNTING_STUDY)
    # Settings beside the study, not in the environment: the resumed runner must see them too.
    (workdir / "settings.json").write_text(json.dumps(
        {"EXEC_LOG": str(exec_log), "RUNS": str(runs), "STEP_MIN_S": str(step_s[0]), "STEP_MAX_S": str(step_s[1])}
    ))
    launched: list[OwnerIdentity] = []
    proc: subprocess.Popen[str] | None = start_expwatch(
        "run", study, "--state-dir", state, "--id", KEY, "-p", str(processes), cwd=workdir, env=cli_env()
    )
    launched.append(identity_of(proc.pid))
    try:
        snapshots: list[tuple[Counter[str], dict[str, dict[str, Any]]]] = []
        kills_left = kills
        while True:
            doc = wait_for(lambda: _running(state) or (read_doc(state, KEY) if owners_gone_now(state) else None),
                           timeout=timeout, what="the experiment running (or over)")
            if kills_left > 0 and doc.status is ExperimentStatus.RUNNING:
                time.sleep(rng.uniform(0.0, max_delay_s))
                doc = read_doc(state, KEY) or doc
                report.kills.append(_kill_one(rng, doc))
                kills_left -= 1
            if proc is not None:
                proc.communicate(timeout=timeout)
                proc = None
            doc = _settle(state, timeout)
            snapshots.append((executions(exec_log), completed_fields(doc)))
            if all(r.status is RunStatus.COMPLETED for r in doc.runs):
                break
            result = resume_experiment(StateStore(state), KEY, retry_failed=True)
            launched.append(identity_of(result.pid))
            report.resumes += 1
            if report.resumes > kills + 2:
                report.problems.append(f"still not completed after {report.resumes} resumes: {doc.error_message}")
                break
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()
        terminate_all(launched)
    final = read_doc(state, KEY)
    counts = executions(exec_log)
    report.reexecuted = sum(n - 1 for n in counts.values() if n > 1)
    report.seconds = time.monotonic() - started
    if final is None:
        report.problems.append("no state file at the end")
        return report
    not_done = [r.id_run for r in final.runs if r.status is not RunStatus.COMPLETED]
    if not_done:
        report.problems.append(f"runs not completed at the end: {not_done}")
    tokens: dict[str, set[str]] = {}
    for line in exec_log.read_text().splitlines():
        run_id, token, _pid = line.split()
        tokens.setdefault(run_id, set()).add(token)
    final_fields = completed_fields(final)
    for rec in final.runs:
        if rec.status is RunStatus.COMPLETED:
            if rec.fields.get("square") != rec.params["i"] ** 2:
                report.problems.append(f"run {rec.id_run}: wrong square {rec.fields.get('square')}")
            if rec.fields.get("token") not in tokens.get(rec.id_run, set()):
                report.problems.append(f"run {rec.id_run}: fields from no recorded execution")
    for n, (seen_counts, seen_fields) in enumerate(snapshots):
        for run_id, fields in seen_fields.items():
            if counts[run_id] != seen_counts[run_id]:
                report.problems.append(
                    f"run {run_id} was completed at checkpoint {n} yet executed again "
                    f"({seen_counts[run_id]} -> {counts[run_id]} executions)"
                )
            if final_fields.get(run_id) != fields:
                report.problems.append(f"run {run_id}: fields changed after completion: {fields} -> {final_fields.get(run_id)}")
    return report


def owners_gone_now(state: Path) -> bool:
    doc = read_doc(state, KEY)
    return doc is not None and doc.status is not ExperimentStatus.INITIALISED and owners_gone(doc)

