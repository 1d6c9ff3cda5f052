"""The wall clock jumping back: records from "the future" show no negative ages and are never judged dead."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from state import StateStore
from state.native import ExperimentDoc, OwnerIdentity
from state.durations import duration as shared_duration
from state.verdict import HostFacts, Liveness, ProcessEvidence, judge_owner, judge_record
from tests.hardening.helpers import run_cli, write_lem

HERE = HostFacts(host="here", boot_id="boot-1")
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def _no_probe(pid: int) -> ProcessEvidence:
    raise AssertionError("other-host owners are never probed")


@pytest.mark.parametrize("ahead", [timedelta(seconds=3), timedelta(minutes=10), timedelta(days=400)])
def test_remote_heartbeat_in_the_future_is_alive_or_unknown_never_dead(ahead: timedelta) -> None:
    owner = OwnerIdentity(host="elsewhere", pid=42, start_time=1.0)
    verdict = judge_owner(owner, here=HERE, evidence=None, heartbeat_at=NOW + ahead,
                          heartbeat_interval_s=2.0, now=NOW)
    assert verdict.liveness in (Liveness.ALIVE, Liveness.UNKNOWN)
    assert "-" not in verdict.reason.split(":", 1)[1], verdict.reason
    if ahead > timedelta(minutes=1):
        assert verdict.liveness is Liveness.UNKNOWN and "clock skew" in verdict.reason


def test_legacy_file_updated_in_the_future_shows_no_negative_age() -> None:
    doc_time = NOW + timedelta(hours=2)
    from state.verdict import judge_legacy_pid

    verdict = judge_legacy_pid(None, evidence=None, started_at=doc_time, last_updated=doc_time, now=NOW)
    assert verdict.liveness is Liveness.UNKNOWN
    assert "-" not in verdict.reason and "0s ago" in verdict.reason
    alive = ProcessEvidence(pid=7, exists=True, start_time=(NOW - timedelta(minutes=1)).timestamp())
    verdict = judge_legacy_pid(7, evidence=alive, started_at=doc_time, last_updated=doc_time, now=NOW)
    assert verdict.liveness is Liveness.ALIVE


def test_native_record_with_every_time_in_the_future(state_dir: Path) -> None:
    later = NOW + timedelta(hours=1)
    doc = ExperimentDoc(
        experiment_id="future", status="running",
        owner=OwnerIdentity(host="elsewhere", pid=42), heartbeat_at=later,
        created_at=later, started_at=later, last_updated=later,
    )
    (state_dir / "future.json").write_text(doc.to_json())
    store = StateStore(state_dir, read_only=True)
    store.scan()
    record = store.entries["future"]
    verdict = judge_record(record, here=HERE, probe=_no_probe, now=NOW)
    assert verdict.liveness is Liveness.UNKNOWN and "clock skew" in verdict.reason


@pytest.mark.parametrize("seconds", [-1.0, -90.0, -86400.0 * 3])
def test_ages_are_never_negative(seconds: float) -> None:
    from widgets.formatting import age, duration

    assert shared_duration(seconds) == "0s"
    assert duration(seconds) == "0s"
    assert age(NOW, NOW - timedelta(seconds=seconds)) == "0s"


def test_dashboard_columns_for_a_record_from_the_future(state_dir: Path) -> None:
    from state.progress import elapsed_seconds, eta_seconds
    from widgets.formatting import duration

    later = NOW + timedelta(hours=1)
    doc = ExperimentDoc(experiment_id="f", status="running", started_at=later, last_updated=later)
    (state_dir / "f.json").write_text(doc.to_json())
    store = StateStore(state_dir, read_only=True)
    store.scan()
    record = store.entries["f"]
    for value in (elapsed_seconds(record, NOW), eta_seconds(record, NOW)):
        assert duration(value) in ("0s", "–")


def test_cli_list_and_show_with_a_file_from_the_future(state_dir: Path) -> None:
    future = (datetime.now() + timedelta(days=2)).replace(microsecond=0)
    write_lem(state_dir, "ahead", status="running", last_updated=future.isoformat(),
              started_at=future.isoformat())
    listed = run_cli("list", "--state-dir", str(state_dir))
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("ahead"))
    assert "owner unknown" in row and "STALE" not in row
    header = listed.stdout.splitlines()[0]
    cells = dict(zip(re.split(r"\s{2,}", header.strip()), re.split(r"\s{2,}", row.strip())))
    assert cells["AGE"] == "0s", cells
    shown = run_cli("show", "ahead", "--state-dir", str(state_dir))
    assert shown.returncode == 0, shown.stderr
    assert "(0s ago)" in shown.stdout
