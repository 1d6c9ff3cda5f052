"""A seeded, deterministic stand-in for NVML, for the demo and the tests (shown as simulated on screen)."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from runtime.gpu.source import Clock, WallClock, utc_now
from state.telemetry import GPU_STATUS_OK, GpuProcessSample, GpuSample, GpuSnapshot

_SIM_MODELS = (
    ("NVIDIA A100-SXM4-80GB", 80 * 1024**3, 400.0),
    ("NVIDIA H100 80GB HBM3", 80 * 1024**3, 700.0),
    ("NVIDIA L40S", 48 * 1024**3, 350.0),
    ("NVIDIA RTX A6000", 48 * 1024**3, 300.0),
)


@dataclass
class _SimGpu:
    name: str
    uuid: str
    memory_total: int
    power_limit: float
    idle_util: float
    phase: float
    period: float
    anchor_t: float = 0.0
    anchor_mj: float = 0.0
    processes: dict[int, tuple[int, str]] = field(default_factory=dict)

    def _wave_integral(self, t: float) -> float:
        omega = 2 * math.pi / self.period
        return 0.5 * t - 0.5 / omega * math.cos(omega * t + self.phase)

    def _energy_integral(self, t: float, busy: bool) -> float:
        """Joules from power = limit * (0.15 + 0.008 * utilization), integrated in closed form."""
        if busy:
            util_integral = 70.0 * t + 28.0 * self._wave_integral(t)
        else:
            util_integral = self.idle_util * self._wave_integral(t)
        return self.power_limit * (0.15 * t + 0.008 * util_integral)

    def energy_mj(self, t: float) -> float:
        busy = bool(self.processes)
        return self.anchor_mj + 1000.0 * (self._energy_integral(t, busy) - self._energy_integral(self.anchor_t, busy))

    def set_processes(self, t: float, change: Callable[[dict[int, tuple[int, str]]], None]) -> None:
        """Change the process set at clock time ``t``, keeping the energy counter continuous."""
        self.anchor_mj = self.energy_mj(t)
        self.anchor_t = t
        change(self.processes)


class SimulatedGpuSource:
    """A seeded, deterministic stand-in for NVML, for the demo and the tests.

    Load follows a smooth per-GPU wave of the clock, raised while any process
    is ``assign``-ed to the GPU; power follows load. The energy counter is the
    closed-form integral of that power since clock zero, so it depends only on
    the clock and the assignments, not on how often it is read: two sources
    with the same seed (say, the runner's and the dashboard's, in different
    processes) report the same counter at the same time, and it grows the way
    a real one does.
    """

    simulated = True

    def __init__(
        self,
        count: int = 4,
        seed: int = 0,
        *,
        clock: Clock = time.monotonic,
        wall_clock: WallClock = utc_now,
    ) -> None:
        rng = random.Random(seed)
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        model = _SIM_MODELS[seed % len(_SIM_MODELS)]
        self._gpus = [
            _SimGpu(
                name=model[0],
                uuid=f"GPU-sim{seed:04x}-{i:04x}-{rng.getrandbits(48):012x}",
                memory_total=model[1],
                power_limit=model[2],
                idle_util=rng.uniform(0.0, 8.0),
                phase=rng.uniform(0.0, 2 * math.pi),
                period=rng.uniform(20.0, 60.0),
            )
            for i in range(max(0, count))
        ]

    def assign(self, pid: int, gpu_index: int, memory_bytes: int = 4 * 1024**3, type: str = "compute") -> None:
        """Show ``pid`` as running on GPU ``gpu_index`` with ``memory_bytes`` in use."""
        with self._lock:
            self._gpus[gpu_index].set_processes(
                self._clock(), lambda procs: procs.__setitem__(pid, (memory_bytes, type))
            )

    def unassign(self, pid: int) -> None:
        with self._lock:
            now = self._clock()
            for gpu in self._gpus:
                if pid in gpu.processes:
                    gpu.set_processes(now, lambda procs: procs.pop(pid, None))

    def _utilization(self, gpu: _SimGpu, now: float) -> float:
        wave = 0.5 + 0.5 * math.sin(now / gpu.period * 2 * math.pi + gpu.phase)
        if not gpu.processes:
            return gpu.idle_util * wave
        return 70.0 + 28.0 * wave

    def _power(self, gpu: _SimGpu, now: float) -> float:
        return gpu.power_limit * (0.15 + 0.008 * self._utilization(gpu, now))

    def sample(self) -> GpuSnapshot:
        with self._lock:
            now = self._clock()
            gpus = []
            for index, gpu in enumerate(self._gpus):
                util = round(self._utilization(gpu, now), 1)
                used = sum(mem for mem, _ in gpu.processes.values()) + 512 * 1024**2
                gpus.append(
                    GpuSample(
                        index=index,
                        name=gpu.name,
                        uuid=gpu.uuid,
                        utilization_gpu=util,
                        utilization_memory=round(util * 0.6, 1),
                        memory_used_bytes=min(used, gpu.memory_total),
                        memory_total_bytes=gpu.memory_total,
                        power_watts=round(self._power(gpu, now), 1),
                        power_limit_watts=gpu.power_limit,
                        energy_mj=int(gpu.energy_mj(now)),
                        temperature_c=round(32.0 + util * 0.45, 1),
                        fan_percent=round(30.0 + util * 0.5, 1),
                        processes=tuple(
                            GpuProcessSample(pid, mem, kind)
                            for pid, (mem, kind) in sorted(gpu.processes.items())
                        ),
                    )
                )
            return GpuSnapshot(
                taken_at=self._wall_clock(),
                gpus=tuple(gpus),
                status=GPU_STATUS_OK,
                simulated=True,
                driver_version="simulated",
            )

    def read_energy_mj(self, gpu_ids: Iterable[int]) -> dict[int, int]:
        with self._lock:
            now = self._clock()
            return {i: int(self._gpus[i].energy_mj(now)) for i in gpu_ids if 0 <= i < len(self._gpus)}

    def close(self) -> None:
        return None
