"""Never more alive than the evidence: process states, elapsed times and ETAs, without Textual.

Each of these failed before the fix: a dead owner's process read "running", elapsed
times grew after the end, and the ETA after a resume used the whole history.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from state.detect import summarize
from state.native import ExperimentDoc, HistoryEntry, OwnerIdentity, ProcessInfo, RunRecord
from state.process_state import process_elapsed, shown_process_status
from state.progress import elapsed_seconds, eta_seconds
from state.record import ExperimentRecord, FileVersion, ProcessRow, StateFormat
from state.transitions import ProcessStatus
from state.verdict import HostFacts, Liveness, ProcessEvidence, StaleVerdict, judge_record

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
ALIVE = StaleVerdict(Liveness.ALIVE, "alive")
DEAD = StaleVerdict(Liveness.DEAD, "dead")


def record(status: str = "running", **kw) -> ExperimentRecord:
    base = dict(key="k", path=Path("/s/k.json"), format=StateFormat.EXPWATCH, experiment_id="k", status=status,
                version=FileVersion(1, 1, 1), started_at=T0, last_updated=T0 + timedelta(minutes=10))
    return ExperimentRecord(**{**base, **kw})


def proc(status: str = "running", **kw) -> ProcessRow:
    return ProcessRow(index=0, status=status, pid=kw.pop("pid", 11), started_at=T0, **kw)


def test_a_running_process_needs_a_live_verdict():
    rec = record()
    assert shown_process_status(proc(), experiment_status="running", verdict=ALIVE) == "running"
    assert shown_process_status(proc(), experiment_status="running", verdict=DEAD) == "dead"
    assert shown_process_status(proc(), experiment_status="running", verdict=None) == "unknown"
    assert shown_process_status(proc(), experiment_status="interrupted", verdict=None) == "stopped"
    assert shown_process_status(proc("interrupted"), experiment_status="interrupted", verdict=None) == "interrupted"
    assert shown_process_status(proc("completed"), experiment_status="running", verdict=DEAD) == "completed"
    assert rec.status == "running"


def test_each_process_carries_its_own_pids_verdict():
    here = HostFacts("h", "b")
    owners = [OwnerIdentity(host="h", boot_id="b", pid=pid, start_ticks=1, role=role) for pid, role in ((1, "coordinator"), (2, "worker"))]
    rec = record(owner=owners[0], workers=(owners[1],))
    alive = {1}
    verdict = judge_record(rec, here=here, probe=lambda pid: ProcessEvidence(pid, pid in alive, start_ticks=1), now=T0)
    assert verdict.is_alive
    assert shown_process_status(proc(pid=2), experiment_status="running", verdict=verdict) == "dead"
    assert shown_process_status(proc(pid=1), experiment_status="running", verdict=verdict) == "running"
    assert shown_process_status(proc(pid=None), experiment_status="running", verdict=verdict) == "running"


def test_elapsed_stops_at_the_last_evidence():
    later, much_later = T0 + timedelta(hours=3), T0 + timedelta(hours=3, minutes=6)
    failed = proc("failed")  # llenergymeasure records no completed_at for a failed worker
    rec = record("failed", last_updated=T0 + timedelta(hours=1))
    assert process_elapsed(failed, "failed", rec, later) == process_elapsed(failed, "failed", rec, much_later) == 3600
    running = proc(heartbeat_at=T0 + timedelta(minutes=5))
    assert process_elapsed(running, "dead", record(), later) == 300
    assert process_elapsed(running, "running", record(), later) == 3 * 3600
    stale = record(heartbeat_at=T0 + timedelta(minutes=7))
    assert elapsed_seconds(stale, later, DEAD) == elapsed_seconds(stale, much_later, DEAD) == 600
    assert elapsed_seconds(stale, later, ALIVE) == 3 * 3600
    done = record("completed", finished_at=T0 + timedelta(minutes=2))
    assert elapsed_seconds(done, later) == 120


def test_a_stale_mark_is_no_evidence_that_it_ran_on():
    """Marked interrupted by someone else an hour after its last heartbeat (the mark writes
    last_updated, never finished_at): elapsed stays at the heartbeat, the experiment's and its
    processes', as it read while it was stale."""
    later = T0 + timedelta(hours=3)
    stale = record(heartbeat_at=T0 + timedelta(minutes=7), last_updated=T0 + timedelta(minutes=7))
    marked = record("interrupted", heartbeat_at=T0 + timedelta(minutes=7), last_updated=T0 + timedelta(hours=1))
    assert elapsed_seconds(stale, later, DEAD) == elapsed_seconds(marked, later) == 420
    assert process_elapsed(proc("failed"), "failed", marked, later) == process_elapsed(proc(), "dead", stale, later) == 420
    no_heartbeat = record("interrupted", last_updated=T0 + timedelta(hours=1))  # a file with no heartbeat: its last write
    assert elapsed_seconds(no_heartbeat, later) == 3600


def doc_after_resume() -> ExperimentDoc:
    """30 runs: 5 done at attempt 1 over an hour, then resumed; 3 more in the last 3 s."""
    runs = [RunRecord(id_run=f"r{i}", index=i, status="completed", attempt=1) for i in range(5)]
    runs += [RunRecord(id_run=f"r{i}", index=i, status="completed", attempt=2) for i in range(5, 8)]
    runs += [RunRecord(id_run=f"r{i}", index=i) for i in range(8, 30)]
    resumed = T0 + timedelta(hours=2)
    return ExperimentDoc(
        experiment_id="k", status="running", attempt=2, runs=runs, started_at=T0, last_updated=resumed,
        history=[
            HistoryEntry(at=T0, **{"from": "initialised"}, to="running", who="u"),
            HistoryEntry(at=T0 + timedelta(hours=1), **{"from": "running"}, to="interrupted", who="u"),
            HistoryEntry(at=resumed, **{"from": "interrupted"}, to="running", who="u"),
        ],
        processes={"0": ProcessInfo(process_index=0, status=ProcessStatus.RUNNING)},
    )


def test_eta_uses_the_current_attempts_rate():
    rec = summarize("k", Path("/s/k.json"), FileVersion(1, 1, 1), StateFormat.EXPWATCH, doc_after_resume())
    now = T0 + timedelta(hours=2, seconds=3)
    assert rec.attempt_runs_finished == 3 and rec.attempt_started_at == T0 + timedelta(hours=2)
    assert eta_seconds(rec, now) == 22.0  # 22 runs left at 1 run/s, not 22 * (2h/8)
    first = record(runs_total=10, runs_done=5)
    assert eta_seconds(first, T0 + timedelta(seconds=50)) == 50.0
