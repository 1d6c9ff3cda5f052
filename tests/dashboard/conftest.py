"""Fixtures for dashboard tests: real state files, a scripted liveness probe, a frozen clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from state.lem import LemExperimentState, ProcessProgress
from state.native import ExperimentDoc, OwnerIdentity, ProcessInfo, RunRecord
from state.telemetry import GpuProcessSample, GpuSample, GpuSnapshot
from state.verdict import HostFacts, ProcessEvidence

FROZEN = datetime(2026, 11, 21, 12, 0, 0, tzinfo=timezone.utc)
HOST = "testhost"
BOOT = "boot-1"
ALIVE_PID = 4242
DEAD_PID = 4343


@dataclass
class ScriptedProbe:
    """Liveness evidence from a script: pids in ``alive`` exist with the recorded start ticks."""

    alive: dict[int, int] = field(default_factory=lambda: {ALIVE_PID: 100})

    def host_facts(self) -> HostFacts:
        return HostFacts(HOST, BOOT)

    def probe(self, pid: int) -> ProcessEvidence:
        if pid in self.alive:
            return ProcessEvidence(pid=pid, exists=True, start_ticks=self.alive[pid], start_time=1000.0)
        return ProcessEvidence(pid=pid, exists=False)


class StaticGpuSource:
    """A GPU source that always returns the same snapshot (deterministic screens)."""

    simulated = True

    def sample(self) -> GpuSnapshot:
        gpus = tuple(
            GpuSample(
                index=i,
                name="Simulated A100",
                uuid=f"GPU-{i}",
                utilization_gpu=50.0 + i,
                utilization_memory=20.0,
                memory_used_bytes=8 * 1024**3,
                memory_total_bytes=80 * 1024**3,
                power_watts=200.0,
                power_limit_watts=400.0,
                energy_mj=1_000_000,
                temperature_c=60.0,
                fan_percent=None,
                processes=(GpuProcessSample(pid=ALIVE_PID, used_memory_bytes=4 * 1024**3, type="compute"),) if i == 0 else (),
            )
            for i in range(2)
        )
        return GpuSnapshot(taken_at=FROZEN, gpus=gpus, status="ok", simulated=True)

    def read_energy_mj(self, gpu_ids):
        return {i: 1_000_000 for i in gpu_ids}

    def close(self) -> None:
        pass


def owner(pid: int, role: str = "coordinator", index: int | None = None) -> OwnerIdentity:
    return OwnerIdentity(host=HOST, boot_id=BOOT, pid=pid, start_ticks=100, role=role, process_index=index)


def native_doc(experiment_id: str, status: str, *, pid: int, runs: int = 4, done: int = 2, failed: int = 0) -> ExperimentDoc:
    started = FROZEN - timedelta(minutes=10)
    run_list = []
    for i in range(runs):
        st = "completed" if i < done else ("failed" if i < done + failed else "pending")
        run_list.append(RunRecord(id_run=f"r{i}", index=i, params={"i": i}, status=st))
    return ExperimentDoc(
        experiment_id=experiment_id,
        name="sweep",
        status=status,
        owner=owner(pid),
        heartbeat_at=FROZEN - timedelta(seconds=3),
        num_processes=1,
        processes={"0": ProcessInfo(process_index=0, status="running" if status == "running" else "completed", gpu_id=0, owner=owner(pid, "worker", 0), runs_total=runs, runs_done=done, runs_failed=failed, current_step="measure", started_at=started)},
        runs=run_list,
        started_at=started,
        created_at=started,
        last_updated=FROZEN - timedelta(seconds=3),
    )


def lem_file(experiment_id: str, status: str, pid: int | None) -> LemExperimentState:
    started = (FROZEN - timedelta(hours=1)).replace(tzinfo=None)
    return LemExperimentState(
        experiment_id=experiment_id,
        status=status,
        model_name="meta-llama/Llama-2-7b-hf",
        num_processes=2,
        subprocess_pid=pid,
        started_at=started,
        last_updated=started,
        process_progress={
            0: ProcessProgress(process_index=0, status="completed", gpu_id=0),
            1: ProcessProgress(process_index=1, status="running", gpu_id=1),
        },
    )


def write_raw(root: Path, model) -> None:
    """Write a model as is (a store save would stamp ``last_updated`` with the real clock)."""
    (root / f"{model.experiment_id}.json").write_text(model.to_json())


def populate(root: Path) -> None:
    """A directory with one of each interesting case, timestamps relative to FROZEN."""
    write_raw(root, native_doc("sweep-alive", "running", pid=ALIVE_PID))
    write_raw(root, native_doc("sweep-dead", "running", pid=DEAD_PID))
    write_raw(root, native_doc("sweep-done", "completed", pid=DEAD_PID, done=4))
    write_raw(root, native_doc("sweep-failed", "failed", pid=DEAD_PID, done=3, failed=1))
    write_raw(root, lem_file("lem-interrupted", "interrupted", None))
    (root / "campaign_manifest.json").write_text('{"experiments": []}')
    (root / "broken.json").write_text('{"experiment_id": "b", "status": ')


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    root = tmp_path / "state"
    root.mkdir()
    populate(root)
    return root


@pytest.fixture
def probe() -> ScriptedProbe:
    return ScriptedProbe()
