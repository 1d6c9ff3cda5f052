"""The stale verdict as pure functions of a record, the probe's evidence and the clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from state import ExperimentRecord, Liveness, StateFormat
from state.native import OwnerIdentity
from state.record import FileVersion
from state.verdict import (
    MIN_LEASE_S,
    HostFacts,
    ProcessEvidence,
    judge_legacy_pid,
    judge_owner,
    judge_record,
)

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
HERE = HostFacts(host="gpu-01", boot_id="boot-A")


def owner(**fields) -> OwnerIdentity:
    base = {"host": "gpu-01", "boot_id": "boot-A", "pid": 4321, "start_time": 1748779200.0, "start_ticks": 5000}
    base.update(fields)
    return OwnerIdentity(**base)


def judge(o: OwnerIdentity, evidence: ProcessEvidence | None, *, heartbeat_at=None, interval=2.0):
    return judge_owner(o, here=HERE, evidence=evidence, heartbeat_at=heartbeat_at, heartbeat_interval_s=interval, now=NOW)


def alive_evidence(**fields) -> ProcessEvidence:
    base = {"pid": 4321, "exists": True, "start_time": 1748779200.0, "start_ticks": 5000}
    base.update(fields)
    return ProcessEvidence(**base)


# -- one owner ------------------------------------------------------------------------------
def test_matching_start_ticks_is_alive() -> None:
    verdict = judge(owner(), alive_evidence())
    assert verdict.liveness is Liveness.ALIVE
    assert "start time matches" in verdict.reason


def test_start_ticks_mismatch_is_pid_reuse() -> None:
    verdict = judge(owner(), alive_evidence(start_ticks=5001))
    assert verdict.liveness is Liveness.DEAD
    assert "PID reused" in verdict.reason and "5001" in verdict.reason


def test_start_time_compared_when_no_ticks() -> None:
    o = owner(start_ticks=None)
    assert judge(o, alive_evidence(start_ticks=None, start_time=1748779200.01)).is_alive
    reused = judge(o, alive_evidence(start_ticks=None, start_time=1748779260.0))
    assert reused.liveness is Liveness.DEAD and "start time differs" in reused.reason


def test_no_start_time_to_compare_is_unknown() -> None:
    verdict = judge(owner(start_ticks=None, start_time=None), alive_evidence())
    assert verdict.liveness is Liveness.UNKNOWN
    assert "no start time" in verdict.reason


def test_missing_process_is_dead() -> None:
    verdict = judge(owner(), ProcessEvidence(pid=4321, exists=False))
    assert verdict.liveness is Liveness.DEAD and "no such process" in verdict.reason


def test_probe_error_is_unknown_not_dead() -> None:
    verdict = judge(owner(), ProcessEvidence(pid=4321, exists=False, error="permission denied"))
    assert verdict.liveness is Liveness.UNKNOWN and "cannot probe" in verdict.reason


def test_not_probed_is_unknown() -> None:
    assert judge(owner(), None).liveness is Liveness.UNKNOWN


def test_zombie_is_dead_even_with_matching_start() -> None:
    verdict = judge(owner(), alive_evidence(zombie=True))
    assert verdict.liveness is Liveness.DEAD and "zombie" in verdict.reason


def test_reboot_is_dead_whatever_the_probe_says() -> None:
    verdict = judge(owner(boot_id="boot-OLD"), alive_evidence())
    assert verdict.liveness is Liveness.DEAD and "rebooted" in verdict.reason


def test_unknown_boot_id_does_not_count_as_reboot() -> None:
    assert judge(owner(boot_id=None), alive_evidence()).is_alive


@pytest.mark.parametrize(
    ("age_s", "interval", "expected"),
    [
        (1, 2.0, Liveness.ALIVE),
        (MIN_LEASE_S - 1, 2.0, Liveness.ALIVE),
        (MIN_LEASE_S + 1, 2.0, Liveness.DEAD),
        (40, 10.0, Liveness.ALIVE),  # lease = 5 intervals = 50 s
        (51, 10.0, Liveness.DEAD),
        (-5, 2.0, Liveness.ALIVE),  # small skew is tolerated
        (-3600, 2.0, Liveness.UNKNOWN),  # a heartbeat far in the future: clock skew
    ],
)
def test_other_host_uses_the_heartbeat_lease(age_s: float, interval: float, expected: Liveness) -> None:
    other = owner(host="gpu-02", boot_id="boot-B")
    verdict = judge(other, None, heartbeat_at=NOW - timedelta(seconds=age_s), interval=interval)
    assert verdict.liveness is expected, verdict.reason


def test_other_host_ignores_local_evidence_and_boot_id() -> None:
    other = owner(host="gpu-02", boot_id="boot-B")
    verdict = judge(other, ProcessEvidence(pid=4321, exists=False), heartbeat_at=NOW - timedelta(seconds=3))
    assert verdict.is_alive


def test_other_host_without_heartbeat_is_unknown() -> None:
    verdict = judge(owner(host="gpu-02"), None, heartbeat_at=None)
    assert verdict.liveness is Liveness.UNKNOWN and "no heartbeat" in verdict.reason


# -- llenergymeasure files: only a pid -----------------------------------------------------
STARTED = datetime(2025, 6, 1, 11, 0, 0, tzinfo=timezone.utc)


def legacy(pid, evidence, started_at=STARTED, last_updated=NOW - timedelta(minutes=5)):
    return judge_legacy_pid(pid, evidence=evidence, started_at=started_at, last_updated=last_updated, now=NOW)


def test_no_owner_recorded_is_unknown_with_file_age() -> None:
    verdict = legacy(None, None)
    assert verdict.liveness is Liveness.UNKNOWN
    assert "no owner recorded" in verdict.reason and "5m00s ago" in verdict.reason


def test_legacy_dead_pid() -> None:
    verdict = legacy(99, ProcessEvidence(pid=99, exists=False))
    assert verdict.liveness is Liveness.DEAD and "no such process" in verdict.reason


def test_legacy_zombie() -> None:
    assert legacy(99, ProcessEvidence(pid=99, exists=True, zombie=True)).liveness is Liveness.DEAD


def test_legacy_pid_started_after_the_files_last_update_is_reuse() -> None:
    # Started after the last write (NOW - 5 min): it cannot be the writer. (Between the start and the
    # last write it is ambiguous: see test_a_lem_pid_started_between_start_and_last_update_is_unknown_not_dead.)
    evidence = ProcessEvidence(pid=99, exists=True, start_time=(NOW - timedelta(minutes=1)).timestamp())
    verdict = legacy(99, evidence)
    assert verdict.liveness is Liveness.DEAD and "PID reused" in verdict.reason


def test_legacy_pid_started_before_the_experiment_is_alive() -> None:
    assert legacy(99, ProcessEvidence(pid=99, exists=True, start_time=STARTED.timestamp() - 1)).is_alive
    # llenergymeasure records started_at just before it spawns the subprocess
    assert legacy(99, ProcessEvidence(pid=99, exists=True, start_time=STARTED.timestamp() + 0.3)).is_alive


def test_legacy_pid_without_any_time_cannot_detect_reuse() -> None:
    fresh = ProcessEvidence(pid=99, exists=True, start_time=NOW.timestamp())
    assert legacy(99, fresh, started_at=None, last_updated=None).is_alive
    # The last write alone is enough: the pid was recorded before this process existed.
    assert legacy(99, fresh, started_at=None).is_dead


def test_legacy_probe_error_is_unknown() -> None:
    verdict = legacy(99, ProcessEvidence(pid=99, exists=False, error="EPERM"))
    assert verdict.liveness is Liveness.UNKNOWN


# -- whole records --------------------------------------------------------------------------
def record(**fields) -> ExperimentRecord:
    base = dict(
        key="e",
        path=Path("/nonexistent/e.json"),
        format=StateFormat.EXPWATCH,
        experiment_id="e",
        status="running",
        version=FileVersion(1, 1, 1),
        last_updated=NOW - timedelta(seconds=30),
    )
    base.update(fields)
    return ExperimentRecord(**base)


class FakeProbe:
    def __init__(self, evidence: dict[int, ProcessEvidence]):
        self.evidence = evidence
        self.asked: list[int] = []

    def __call__(self, pid: int) -> ProcessEvidence:
        self.asked.append(pid)
        return self.evidence.get(pid, ProcessEvidence(pid=pid, exists=False))


def test_record_without_owner_falls_back_to_the_legacy_pid() -> None:
    probe = FakeProbe({})
    verdict = judge_record(record(format=StateFormat.LEM_V1, legacy_pid=77), here=HERE, probe=probe, now=NOW)
    assert probe.asked == [77]
    assert verdict.liveness is Liveness.DEAD


def test_record_without_any_owner_is_unknown_and_probes_nothing() -> None:
    probe = FakeProbe({})
    verdict = judge_record(record(format=StateFormat.LEM_V1), here=HERE, probe=probe, now=NOW)
    assert probe.asked == []
    assert verdict.liveness is Liveness.UNKNOWN and "no owner recorded" in verdict.reason


def test_record_alive_if_any_owner_alive() -> None:
    coordinator = owner(pid=10, start_ticks=100)
    worker = owner(pid=11, start_ticks=110, role="worker")
    probe = FakeProbe({11: alive_evidence(pid=11, start_ticks=110)})
    verdict = judge_record(record(owner=coordinator, workers=(worker,)), here=HERE, probe=probe, now=NOW)
    assert verdict.is_alive
    assert len(verdict.evidence) == 2


def test_record_dead_only_if_every_owner_dead() -> None:
    coordinator = owner(pid=10, start_ticks=100)
    worker = owner(pid=11, start_ticks=110, role="worker")
    probe = FakeProbe({11: alive_evidence(pid=11, start_ticks=999)})
    assert judge_record(record(owner=coordinator, workers=(worker,)), here=HERE, probe=probe, now=NOW).is_dead


def test_record_with_dead_and_unknown_owners_is_unknown() -> None:
    coordinator = owner(pid=10, start_ticks=100)
    remote = owner(pid=11, host="gpu-09", role="worker")
    probe = FakeProbe({})
    verdict = judge_record(record(owner=coordinator, workers=(remote,)), here=HERE, probe=probe, now=NOW)
    assert verdict.liveness is Liveness.UNKNOWN
    assert probe.asked == [10]  # the remote owner is never probed locally


def test_a_lem_pid_started_between_start_and_last_update_is_unknown_not_dead():
    """A process with the recorded PID that started after the experiment but before its last write
    could be the experiment's own restarted subprocess: no proof of death (it was judged dead)."""
    from datetime import datetime, timedelta, timezone

    from state.verdict import Liveness, ProcessEvidence, judge_by_lem_rule, judge_legacy_pid

    t0 = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
    now = t0 + timedelta(hours=2)

    def at(when: datetime) -> ProcessEvidence:
        return ProcessEvidence(pid=77, exists=True, start_time=when.timestamp())

    between = judge_legacy_pid(77, evidence=at(t0 + timedelta(minutes=30)), started_at=t0, last_updated=t0 + timedelta(hours=1), now=now)
    assert between.liveness is Liveness.UNKNOWN and "cannot tell" in between.reason
    after = judge_legacy_pid(77, evidence=at(t0 + timedelta(hours=1, minutes=5)), started_at=t0, last_updated=t0 + timedelta(hours=1), now=now)
    assert after.is_dead and "after the file's last update" in after.reason
    before = judge_legacy_pid(77, evidence=at(t0 - timedelta(minutes=1)), started_at=t0, last_updated=t0 + timedelta(hours=1), now=now)
    assert before.is_alive
    assert judge_by_lem_rule(None, None).is_dead
    assert judge_by_lem_rule(77, ProcessEvidence(pid=77, exists=False)).is_dead
    assert judge_by_lem_rule(77, ProcessEvidence(pid=77, exists=False, error="permission denied")).is_dead
    assert judge_by_lem_rule(77, at(t0)).is_alive
