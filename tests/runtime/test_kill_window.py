"""After a SIGKILL, only the runs in flight run again: finished ones are on disk before they count.

The coordinator writes the state file a few times a second; runs of a few
milliseconds finish by the dozen in between. Their results go to each
worker's spool file first, so a SIGKILL of the coordinator (or of a worker)
costs at most the run each worker was in the middle of.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from runtime.actions import mark_stale_experiment, resume_experiment
from state.native import RunStatus
from state.store import StateStore
from state.transitions import ExperimentStatus

from tests.runtime.helpers import (
    COUNTING_STUDY,
    cli_env,
    executions,
    owners_gone,
    read_doc,
    start_expwatch,
    wait_for,
    write_study,
)

PROCESSES = 2


def _finished_on_disk(state: Path, key: str, at_least: int):
    doc = read_doc(state, key)
    if doc is None or doc.status is not ExperimentStatus.RUNNING:
        return None
    done = sum(r.status is RunStatus.COMPLETED for r in doc.runs)
    return doc if done >= at_least else None


@pytest.mark.parametrize("victim", ["coordinator", "worker"])
def test_a_sigkill_reruns_only_the_runs_in_flight(tmp_path: Path, victim: str, remember):
    state = tmp_path / "state"
    exec_log = tmp_path / "exec.log"
    study = write_study(tmp_path, COUNTING_STUDY)
    (tmp_path / "settings.json").write_text(json.dumps(
        {"EXEC_LOG": str(exec_log), "RUNS": "600", "STEP_MIN_S": "0.002", "STEP_MAX_S": "0.006"}
    ))
    proc = start_expwatch("run", study, "--state-dir", state, "--id", "k", "-p", str(PROCESSES),
                          cwd=tmp_path, env=cli_env())
    try:
        doc = wait_for(lambda: _finished_on_disk(state, "k", 60), timeout=60, what="runs completed on disk")
        if victim == "coordinator":
            os.kill(proc.pid, signal.SIGKILL)
        else:
            os.kill(doc.processes["0"].owner.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    doc = wait_for(lambda: (d := read_doc(state, "k")) and owners_gone(d) and d, timeout=30, what="owners gone")
    if doc.status is ExperimentStatus.RUNNING:
        mark_stale_experiment(StateStore(state), "k")
    doc = read_doc(state, "k")
    if doc.status is not ExperimentStatus.COMPLETED:
        remember(resume_experiment(StateStore(state), "k", retry_failed=True).pid)
        doc = wait_for(lambda: (d := read_doc(state, "k")) and d.status is ExperimentStatus.COMPLETED
                       and owners_gone(d) and d, timeout=120, what="the resumed experiment completed")
    counts = executions(exec_log)
    again = {run: n for run, n in counts.items() if n > 1}
    # Each worker's run in flight when the coordinator dies; the killed worker's one otherwise
    # (failed as WorkerDied, then retried). Before the spool: 35 and 6 here.
    limit = PROCESSES if victim == "coordinator" else 1
    assert sum(n - 1 for n in again.values()) <= limit, again
    assert len(counts) == 600 and all(r.status is RunStatus.COMPLETED for r in doc.runs)
    assert not (state / ".expwatch" / "spool" / "k").exists() or not any((state / ".expwatch" / "spool" / "k").iterdir())
