"""GPU processes matched to experiments by owner PID and start time."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from state.native import OwnerIdentity
from state.record import ExperimentRecord, FileVersion, ProcessRow, StateFormat
from state.telemetry import GpuProcessSample, GpuSample, GpuSnapshot, attribute_gpu_processes

HOST = "node-1"
T0 = 1_700_000_000.0


def gpu(index: int, *pids: int) -> GpuSample:
    return GpuSample(
        index=index, name="g", uuid=f"GPU-{index}", utilization_gpu=None, utilization_memory=None,
        memory_used_bytes=None, memory_total_bytes=None, power_watts=None, power_limit_watts=None,
        energy_mj=None, temperature_c=None, fan_percent=None,
        processes=tuple(GpuProcessSample(p, 2**30, "compute") for p in pids),
    )


def snapshot(*gpus: GpuSample) -> GpuSnapshot:
    return GpuSnapshot(taken_at=datetime.now(timezone.utc), gpus=gpus, status="ok")


def owner(pid: int, start: float | None, *, index: int | None = None, role: str = "worker", host: str = HOST):
    return OwnerIdentity(host=host, pid=pid, start_time=start, role=role, process_index=index)


def record(key: str, *, owner_=None, workers=(), rows=(), status="running", legacy_pid=None, fmt=StateFormat.EXPWATCH):
    return ExperimentRecord(
        key=key, path=Path(f"/s/{key}.json"), format=fmt, experiment_id=f"exp-{key}", status=status,
        version=FileVersion(1, 1, 1), owner=owner_, workers=tuple(workers), processes=tuple(rows),
        legacy_pid=legacy_pid,
    )


def test_workers_are_matched_to_experiment_process_and_step():
    rec = record(
        "a",
        owner_=owner(100, T0, role="coordinator"),
        workers=[owner(101, T0 + 1, index=0), owner(102, T0 + 2, index=1)],
        rows=[ProcessRow(index=0, status="running", current_step="prefill"),
              ProcessRow(index=1, status="running", current_step="decode")],
    )
    snap = snapshot(gpu(0, 101), gpu(1, 102, 999))
    found = attribute_gpu_processes(
        snap, [rec], start_times={101: T0 + 1.01, 102: T0 + 2.0, 999: T0}, host=HOST
    )
    assert set(found) == {101, 102}
    assert (found[101].experiment_id, found[101].key, found[101].process_index) == ("exp-a", "a", 0)
    assert found[101].current_step == "prefill" and found[101].role == "worker"
    assert found[102].current_step == "decode" and found[102].gpu_indices == (1,)
    assert found[101].confident and found[102].confident


def test_a_reused_pid_is_not_matched():
    rec = record("a", workers=[owner(101, T0, index=0)])
    found = attribute_gpu_processes(snapshot(gpu(0, 101)), [rec], start_times={101: T0 + 0.2}, host=HOST)
    assert found == {}


def test_unknown_start_time_matches_but_is_flagged():
    rec = record("a", workers=[owner(101, T0, index=0)])
    found = attribute_gpu_processes(snapshot(gpu(0, 101)), [rec], start_times={}, host=HOST)
    assert found[101].confident is False
    rec_no_time = record("b", workers=[owner(102, None, index=0)])
    found = attribute_gpu_processes(snapshot(gpu(0, 102)), [rec_no_time], start_times={102: T0}, host=HOST)
    assert found[102].confident is False


def test_owners_on_another_host_never_match():
    rec = record("a", workers=[owner(101, T0, index=0, host="node-2")])
    assert attribute_gpu_processes(snapshot(gpu(0, 101)), [rec], start_times={101: T0}, host=HOST) == {}


def test_llenergymeasure_records_match_by_pid_unconfirmed():
    rec = record("lem", legacy_pid=555, fmt=StateFormat.LEM_V1)
    found = attribute_gpu_processes(snapshot(gpu(2, 555)), [rec], start_times={555: T0}, host=HOST)
    assert found[555].confident is False and found[555].role == "subprocess"
    assert found[555].gpu_indices == (2,)


def test_a_confirmed_owner_wins_over_a_stale_pid_claim():
    old = record("old", legacy_pid=101, status="failed", fmt=StateFormat.LEM_V1)
    new = record("new", workers=[owner(101, T0, index=3)])
    found = attribute_gpu_processes(snapshot(gpu(0, 101)), [old, new], start_times={101: T0}, host=HOST)
    assert found[101].key == "new" and found[101].process_index == 3


def test_coordinator_gets_the_step_of_a_single_running_process():
    rec = record("a", owner_=owner(100, T0, role="coordinator"),
                 rows=[ProcessRow(index=0, status="running", current_step="load")])
    found = attribute_gpu_processes(snapshot(gpu(0, 100)), [rec], start_times={100: T0}, host=HOST)
    assert found[100].role == "coordinator" and found[100].current_step == "load"
    assert found[100].process_index is None


def test_no_gpu_processes_means_no_attribution():
    rec = record("a", workers=[owner(101, T0, index=0)])
    assert attribute_gpu_processes(snapshot(gpu(0)), [rec], host=HOST) == {}
