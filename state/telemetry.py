"""Telemetry snapshots the dashboard renders: GPUs, owner processes, attribution.

Plain immutable data and pure functions only: the samplers that fill these live
in ``runtime/`` (NVML, psutil), and the widgets read them without importing
``runtime``. ``None`` in a field always means "n/a" (not supported, not
readable, or not known yet), never zero.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from state.native import OwnerIdentity
from state.record import ExperimentRecord

GPU_STATUS_OK = "ok"
GPU_STATUS_NO_LIBRARY = "no NVML library"
GPU_STATUS_NO_DRIVER = "no driver"
GPU_STATUS_DRIVER_MISMATCH = "driver/library version mismatch"
GPU_STATUS_NO_PERMISSION = "no permission to use NVML"
GPU_STATUS_NOT_STARTED = "not sampled yet"

START_TIME_TOLERANCE_S = 0.05
"""How far a recorded owner start time may be from the live process's create time."""


@dataclass(frozen=True, slots=True)
class GpuProcessSample:
    """One process that holds a context on a GPU."""

    pid: int
    used_memory_bytes: int | None
    type: str
    """``"compute"`` or ``"graphics"``."""


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One GPU at one instant. A GPU that could not be read has ``error`` set."""

    index: int
    name: str
    uuid: str
    utilization_gpu: float | None
    utilization_memory: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    power_watts: float | None
    power_limit_watts: float | None
    energy_mj: int | None
    temperature_c: float | None
    fan_percent: float | None
    processes: tuple[GpuProcessSample, ...] = ()
    error: str | None = None
    """A per-GPU failure such as ``"GPU lost"``; the other fields are then n/a."""

    @property
    def memory_fraction(self) -> float | None:
        if not self.memory_total_bytes or self.memory_used_bytes is None:
            return None
        return self.memory_used_bytes / self.memory_total_bytes

    @property
    def power_fraction(self) -> float | None:
        if not self.power_limit_watts or self.power_watts is None:
            return None
        return self.power_watts / self.power_limit_watts

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys(p.pid for p in self.processes))


@dataclass(frozen=True, slots=True)
class GpuSnapshot:
    """All GPUs at one instant, or why there are none."""

    taken_at: datetime
    gpus: tuple[GpuSample, ...]
    status: str
    """``"ok"`` or a short reason the GPUs cannot be read (``GPU_STATUS_*``)."""
    simulated: bool = False
    driver_version: str | None = None
    nvml_version: str | None = None
    detail: str | None = None
    """The underlying error text when ``status`` is not ok."""

    @property
    def ok(self) -> bool:
        return self.status == GPU_STATUS_OK

    def gpu(self, index: int) -> GpuSample | None:
        return next((g for g in self.gpus if g.index == index), None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``taken_at`` as ISO 8601)."""
        data = asdict(self)
        data["taken_at"] = self.taken_at.isoformat()
        return data

    def gpu_pids(self) -> dict[int, tuple[int, ...]]:
        """pid -> indices of the GPUs it runs on."""
        found: dict[int, list[int]] = {}
        for g in self.gpus:
            for pid in g.pids:
                found.setdefault(pid, []).append(g.index)
        return {pid: tuple(indices) for pid, indices in found.items()}


@dataclass(frozen=True, slots=True)
class HostGpus:
    """One host's GPUs as its agent last published them to a hub: the fleet's GPU panel groups by these."""

    host: str
    snapshot: GpuSnapshot | None
    """None when the host published none (no agent GPUs, or its snapshot expired with its lease)."""
    attributions: Mapping[int, GpuAttribution] = field(default_factory=dict)
    """Judged on that host, against its own records (only it can read its processes' start times)."""
    history: Mapping[int, tuple[float | None, ...]] = field(default_factory=dict)
    silent_s: float | None = None
    """Seconds since the host's agent last renewed its lease, once expired (None: alive)."""


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """CPU and memory of one owner process at one poll."""

    pid: int
    cpu_percent: float | None
    """Percent of one core since the previous poll; ``None`` on the first (priming) poll."""
    rss_bytes: int | None
    alive: bool
    start_time: float | None = None


@dataclass(frozen=True, slots=True)
class GpuAttribution:
    """Which experiment (and which of its processes) a GPU process belongs to."""

    pid: int
    experiment_id: str
    key: str
    process_index: int | None
    role: str
    current_step: str | None
    confident: bool = True
    """False where the PID matched but no start time could confirm it (PID reuse possible)."""
    gpu_indices: tuple[int, ...] = field(default=())


def _current_step(record: ExperimentRecord, process_index: int | None) -> str | None:
    rows = record.processes
    if process_index is not None:
        row = next((r for r in rows if r.index == process_index), None)
        return row.current_step if row else None
    running = [r for r in rows if r.current_step]
    return running[0].current_step if len(running) == 1 else None


def _owner_verdict(
    owner: OwnerIdentity,
    pid: int,
    host: str,
    boot_id: str | None,
    start_times: Mapping[int, float],
) -> bool | None:
    """True: same process; False: not a match; None: same pid, unconfirmed."""
    if owner.pid != pid or owner.host != host:
        return False
    if boot_id and owner.boot_id and owner.boot_id != boot_id:
        return False
    live = start_times.get(pid)
    if live is None or owner.start_time is None:
        return None
    return abs(live - owner.start_time) <= START_TIME_TOLERANCE_S


def attribute_gpu_processes(
    snapshot: GpuSnapshot,
    records: Iterable[ExperimentRecord],
    *,
    start_times: Mapping[int, float] | None = None,
    host: str | None = None,
    boot_id: str | None = None,
) -> dict[int, GpuAttribution]:
    """Match each GPU process to the experiment whose recorded owner it is.

    A PID is only trusted with a matching start time (``start_times``: pid ->
    create time, gathered by the caller); a recorded start time that differs
    means the PID was reused and nothing matches. Where either start time is
    unknown, and for llenergymeasure files (a bare ``subprocess_pid``), the PID
    alone matches with ``confident=False``. Owners on another host never match.
    When several experiments claim one PID, a confirmed owner wins, then an
    active experiment.
    """
    here = host if host is not None else socket.gethostname()
    times = start_times or {}
    gpu_pids = snapshot.gpu_pids()
    if not gpu_pids:
        return {}
    candidates: dict[int, list[tuple[tuple[int, int], GpuAttribution]]] = {}
    for record in records:
        if getattr(record, "broken", False):
            continue
        active = record.status in ("initialised", "running")
        owners = ([record.owner] if record.owner else []) + list(record.workers)
        for owner in owners:
            if owner.pid not in gpu_pids:
                continue
            verdict = _owner_verdict(owner, owner.pid, here, boot_id, times)
            if verdict is False:
                continue
            attribution = GpuAttribution(
                pid=owner.pid,
                experiment_id=record.experiment_id,
                key=record.key,
                process_index=owner.process_index,
                role=owner.role,
                current_step=_current_step(record, owner.process_index),
                confident=verdict is True,
                gpu_indices=gpu_pids[owner.pid],
            )
            rank = (int(verdict is True), int(active))
            candidates.setdefault(owner.pid, []).append((rank, attribution))
        if record.legacy_pid is not None and record.legacy_pid in gpu_pids and not owners:
            attribution = GpuAttribution(
                pid=record.legacy_pid,
                experiment_id=record.experiment_id,
                key=record.key,
                process_index=None,
                role="subprocess",
                current_step=None,
                confident=False,
                gpu_indices=gpu_pids[record.legacy_pid],
            )
            candidates.setdefault(record.legacy_pid, []).append(((0, int(active)), attribution))
    result: dict[int, GpuAttribution] = {}
    for pid, found in candidates.items():
        # Prefer a worker identity over the coordinator when both name the pid.
        found.sort(key=lambda c: (c[0], c[1].process_index is not None), reverse=True)
        result[pid] = found[0][1]
    return result
