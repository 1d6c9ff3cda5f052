"""GPU telemetry: NVML (through nvidia-ml-py) or a deterministic simulation.

``NvmlGpuSource`` initialises NVML once and turns every per-field failure into
``None`` (n/a): a GPU that does not support a counter, or denies it, still
shows everything else. A lost GPU marks only itself. A missing library or
driver is a status on the snapshot, never an exception, and initialisation is
retried every ``retry_interval`` seconds so a driver loaded later is picked up.

``GpuSampler`` runs one source on its own thread and keeps the latest snapshot
and a short history for sparklines; callers only ever read, never wait on NVML.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from runtime.periodic import PeriodicThread
from state.telemetry import (
    GPU_STATUS_DRIVER_MISMATCH,
    GPU_STATUS_NO_DRIVER,
    GPU_STATUS_NO_LIBRARY,
    GPU_STATUS_NO_PERMISSION,
    GPU_STATUS_OK,
    GpuProcessSample,
    GpuSample,
    GpuSnapshot,
)

log = logging.getLogger(__name__)

SIMULATE_ENV = "EXPWATCH_SIMULATE_GPUS"
INIT_RETRY_S = 60.0

Clock = Callable[[], float]
WallClock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@runtime_checkable
class GpuSource(Protocol):
    """Where GPU snapshots come from: NVML or a simulation."""

    simulated: bool

    def sample(self) -> GpuSnapshot: ...

    def read_energy_mj(self, gpu_ids: Iterable[int]) -> dict[int, int]:
        """Total energy counters (millijoules) of the given GPUs; unreadable ones are left out."""
        ...

    def close(self) -> None: ...


class _GpuLost(Exception):
    """A per-GPU call said the GPU is gone; the rest of that GPU's fields are skipped."""


_PROCESS_FUNCTIONS = {
    "compute": (
        "nvmlDeviceGetComputeRunningProcesses_v3",
        "nvmlDeviceGetComputeRunningProcesses_v2",
        "nvmlDeviceGetComputeRunningProcesses",
    ),
    "graphics": (
        "nvmlDeviceGetGraphicsRunningProcesses_v3",
        "nvmlDeviceGetGraphicsRunningProcesses_v2",
        "nvmlDeviceGetGraphicsRunningProcesses",
    ),
}

# Plain numeric fields read every tick: (GpuSample attribute, pynvml function).
_SCALAR_FIELDS: tuple[tuple[str, str], ...] = (
    ("power_watts", "nvmlDeviceGetPowerUsage"),
    ("power_limit_watts", "nvmlDeviceGetEnforcedPowerLimit"),
    ("energy_mj", "nvmlDeviceGetTotalEnergyConsumption"),
    ("fan_percent", "nvmlDeviceGetFanSpeed"),
)


class NvmlGpuSource:
    """GPUs as NVML reports them, with n/a per field and a status instead of exceptions."""

    simulated = False

    def __init__(
        self,
        *,
        retry_interval: float = INIT_RETRY_S,
        clock: Clock = time.monotonic,
        wall_clock: WallClock = _utc_now,
        nvml: ModuleType | None = None,
    ) -> None:
        self._retry_interval = retry_interval
        self._clock = clock
        self._wall_clock = wall_clock
        self._nvml = nvml
        self._lock = threading.RLock()
        self._initialized = False
        self._last_attempt: float | None = None
        self._status = GPU_STATUS_NO_LIBRARY
        self._detail: str | None = None
        self._driver_version: str | None = None
        self._nvml_version: str | None = None
        self._count = 0
        self._handles: dict[int, Any] = {}
        self._static: dict[int, tuple[str, str]] = {}
        self._unsupported: set[tuple[int, str]] = set()
        self._process_fn: dict[str, str | None] = {}
        self.init_attempts = 0

    # -- initialisation ------------------------------------------------------
    def _module(self) -> ModuleType | None:
        if self._nvml is None:
            try:
                import pynvml
            except ImportError as exc:
                self._detail = f"nvidia-ml-py is not installed: {exc}"
                return None
            self._nvml = pynvml
        return self._nvml

    def _status_for(self, exc: BaseException) -> str:
        nvml = self._nvml
        if nvml is None:
            return GPU_STATUS_NO_LIBRARY
        mapping = (
            ("NVMLError_LibraryNotFound", GPU_STATUS_NO_LIBRARY),
            ("NVMLError_DriverNotLoaded", GPU_STATUS_NO_DRIVER),
            ("NVMLError_LibRmVersionMismatch", GPU_STATUS_DRIVER_MISMATCH),
            ("NVMLLibraryMismatchError", GPU_STATUS_DRIVER_MISMATCH),
            ("NVMLError_NoPermission", GPU_STATUS_NO_PERMISSION),
        )
        for name, status in mapping:
            cls = getattr(nvml, name, None)
            if isinstance(cls, type) and isinstance(exc, cls):
                return status
        return f"NVML error: {exc}"

    def _ensure_init(self) -> bool:
        if self._initialized:
            return True
        now = self._clock()
        if self._last_attempt is not None and now - self._last_attempt < self._retry_interval:
            return False
        self._last_attempt = now
        self.init_attempts += 1
        nvml = self._module()
        if nvml is None:
            self._status = GPU_STATUS_NO_LIBRARY
            return False
        try:
            nvml.nvmlInit()
        except Exception as exc:  # NVMLError subclasses, or OSError from a broken library
            self._status = self._status_for(exc)
            self._detail = str(exc)
            return False
        self._initialized = True
        self._status = GPU_STATUS_OK
        self._detail = None
        self._handles.clear()
        self._static.clear()
        self._unsupported.clear()
        self._process_fn.clear()
        self._driver_version = self._system_string("nvmlSystemGetDriverVersion")
        self._nvml_version = self._system_string("nvmlSystemGetNVMLVersion")
        return True

    def _system_string(self, name: str) -> str | None:
        try:
            value = getattr(self._nvml, name)()
        except Exception:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    def _lose_library(self, exc: BaseException) -> None:
        """NVML stopped answering as a whole (driver unloaded): go back to retrying init."""
        self._status = self._status_for(exc)
        self._detail = str(exc)
        self._initialized = False
        self._last_attempt = self._clock()
        try:
            self._nvml.nvmlShutdown()  # type: ignore[union-attr]
        except Exception:
            log.debug("nvmlShutdown after losing NVML failed", exc_info=True)

    # -- per-GPU reads -------------------------------------------------------
    def _is_lost(self, exc: BaseException) -> bool:
        nvml = self._nvml
        for name in ("NVMLError_GpuIsLost", "NVMLError_Unknown"):
            cls = getattr(nvml, name, None)
            if isinstance(cls, type) and isinstance(exc, cls):
                return True
        return False

    def _read(self, index: int, fn_name: str, *args: Any) -> Any:
        """One NVML call for GPU ``index``: its value, or None for n/a; raises _GpuLost."""
        if (index, fn_name) in self._unsupported:
            return None
        try:
            return getattr(self._nvml, fn_name)(*args)
        except Exception as exc:
            if self._is_lost(exc):
                raise _GpuLost(str(exc)) from exc
            not_supported = getattr(self._nvml, "NVMLError_NotSupported", None)
            if isinstance(not_supported, type) and isinstance(exc, not_supported):
                self._unsupported.add((index, fn_name))
            return None

    def _handle(self, index: int) -> Any:
        handle = self._handles.get(index)
        if handle is None:
            handle = self._nvml.nvmlDeviceGetHandleByIndex(index)  # type: ignore[union-attr]
            self._handles[index] = handle
        return handle

    def _processes(self, index: int, handle: Any) -> tuple[GpuProcessSample, ...]:
        found: dict[int, GpuProcessSample] = {}
        for kind in ("compute", "graphics"):
            for proc in self._process_list(index, kind, handle) or ():
                pid = int(proc.pid)
                used = getattr(proc, "usedGpuMemory", None)
                used = int(used) if used is not None else None
                seen = found.get(pid)
                if seen is not None:
                    mem = max((m for m in (seen.used_memory_bytes, used) if m is not None), default=None)
                    found[pid] = GpuProcessSample(pid, mem, "compute+graphics")
                else:
                    found[pid] = GpuProcessSample(pid, used, kind)
        return tuple(found.values())

    def _process_list(self, index: int, kind: str, handle: Any) -> list[Any] | None:
        """The newest process-list call the driver has; remembered once found."""
        chosen = self._process_fn.get(kind, "")
        names = _PROCESS_FUNCTIONS[kind] if chosen == "" else ((chosen,) if chosen else ())
        nvml = self._nvml
        missing = tuple(
            cls
            for cls in (getattr(nvml, "NVMLError_FunctionNotFound", None), getattr(nvml, "NVMLLibraryMismatchError", None))
            if isinstance(cls, type)
        )
        for name in names:
            fn = getattr(nvml, name, None)
            if fn is None:
                continue
            try:
                result = fn(handle)
            except Exception as exc:
                if missing and isinstance(exc, missing):
                    continue
                if self._is_lost(exc):
                    raise _GpuLost(str(exc)) from exc
                self._process_fn[kind] = name
                return None
            self._process_fn[kind] = name
            return result
        self._process_fn[kind] = None
        return None

    def _sample_gpu(self, index: int) -> GpuSample:
        nvml = self._nvml
        try:
            handle = self._handle(index)
        except Exception as exc:
            return _failed_gpu(index, "GPU lost" if self._is_lost(exc) else f"unreadable: {exc}")
        try:
            static = self._static.get(index)
            if static is None:
                name = self._read(index, "nvmlDeviceGetName", handle)
                uuid = self._read(index, "nvmlDeviceGetUUID", handle)
                static = (_text(name) or "", _text(uuid) or "")
                self._static[index] = static
            util = self._read(index, "nvmlDeviceGetUtilizationRates", handle)
            memory = self._read(index, "nvmlDeviceGetMemoryInfo", handle)
            temperature = self._read(
                index, "nvmlDeviceGetTemperature", handle, getattr(nvml, "NVML_TEMPERATURE_GPU", 0)
            )
            scalars = {attr: self._read(index, fn, handle) for attr, fn in _SCALAR_FIELDS}
            processes = self._processes(index, handle)
        except _GpuLost:
            self._handles.pop(index, None)
            return _failed_gpu(index, "GPU lost", *self._static.get(index, ("", "")))
        power = scalars["power_watts"]
        limit = scalars["power_limit_watts"]
        energy = scalars["energy_mj"]
        fan = scalars["fan_percent"]
        return GpuSample(
            index=index,
            name=static[0],
            uuid=static[1],
            utilization_gpu=float(util.gpu) if util is not None else None,
            utilization_memory=float(util.memory) if util is not None else None,
            memory_used_bytes=int(memory.used) if memory is not None else None,
            memory_total_bytes=int(memory.total) if memory is not None else None,
            power_watts=power / 1000.0 if power is not None else None,
            power_limit_watts=limit / 1000.0 if limit is not None else None,
            energy_mj=int(energy) if energy is not None else None,
            temperature_c=float(temperature) if temperature is not None else None,
            fan_percent=float(fan) if fan is not None else None,
            processes=processes,
        )

    # -- GpuSource -----------------------------------------------------------
    def _snapshot(self, gpus: tuple[GpuSample, ...] = ()) -> GpuSnapshot:
        return GpuSnapshot(
            taken_at=self._wall_clock(),
            gpus=gpus,
            status=self._status,
            simulated=False,
            driver_version=self._driver_version if self._initialized else None,
            nvml_version=self._nvml_version if self._initialized else None,
            detail=self._detail,
        )

    def _device_count(self) -> int | None:
        try:
            self._count = int(self._nvml.nvmlDeviceGetCount())  # type: ignore[union-attr]
        except Exception as exc:
            self._lose_library(exc)
            return None
        return self._count

    def sample(self) -> GpuSnapshot:
        with self._lock:
            if not self._ensure_init():
                return self._snapshot()
            count = self._device_count()
            if count is None:
                return self._snapshot()
            return self._snapshot(tuple(self._sample_gpu(i) for i in range(count)))

    def read_energy_mj(self, gpu_ids: Iterable[int]) -> dict[int, int]:
        with self._lock:
            if not self._ensure_init():
                return {}
            found: dict[int, int] = {}
            for index in gpu_ids:
                try:
                    handle = self._handle(index)
                    value = self._read(index, "nvmlDeviceGetTotalEnergyConsumption", handle)
                except Exception:
                    self._handles.pop(index, None)
                    continue
                if value is not None:
                    found[index] = int(value)
            return found

    @property
    def status(self) -> str:
        return self._status

    def close(self) -> None:
        with self._lock:
            if self._initialized:
                self._initialized = False
                try:
                    self._nvml.nvmlShutdown()  # type: ignore[union-attr]
                except Exception:
                    log.debug("nvmlShutdown failed", exc_info=True)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _failed_gpu(index: int, error: str, name: str = "", uuid: str = "") -> GpuSample:
    return GpuSample(
        index=index,
        name=name,
        uuid=uuid,
        utilization_gpu=None,
        utilization_memory=None,
        memory_used_bytes=None,
        memory_total_bytes=None,
        power_watts=None,
        power_limit_watts=None,
        energy_mj=None,
        temperature_c=None,
        fan_percent=None,
        processes=(),
        error=error,
    )


# -- simulation --------------------------------------------------------------

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
        wall_clock: WallClock = _utc_now,
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


def make_gpu_source(simulate: int | None = None) -> GpuSource:
    """NVML, or ``simulate`` simulated GPUs (default: ``$EXPWATCH_SIMULATE_GPUS``)."""
    if simulate is None:
        raw = os.environ.get(SIMULATE_ENV, "").strip()
        if raw:
            try:
                simulate = int(raw)
            except ValueError:
                raise ValueError(f"{SIMULATE_ENV} must be a number of GPUs, not {raw!r}") from None
    if simulate is not None and simulate > 0:
        return SimulatedGpuSource(count=simulate)
    return NvmlGpuSource()


# -- sampler thread ----------------------------------------------------------


class GpuSampler(PeriodicThread):
    """Samples a ``GpuSource`` on its own thread; readers never wait on NVML.

    ``latest()`` and ``history()`` read what the thread last stored, under a
    short lock. ``on_snapshot`` is called on the sampler thread (an app posts
    it to its own loop from there). ``stop()`` wakes the thread and joins it
    with a bound: a driver call stuck in the kernel cannot hang the caller.
    """

    thread_name = "expwatch-gpu-sampler"

    def __init__(
        self,
        source: GpuSource,
        interval: float = 1.0,
        history_seconds: float = 300.0,
        on_snapshot: Callable[[GpuSnapshot], None] | None = None,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(interval, clock=clock)
        self.source = source
        self.on_snapshot = on_snapshot
        self._lock = threading.Lock()
        self._latest: GpuSnapshot | None = None
        self._history: deque[GpuSnapshot] = deque(maxlen=max(1, math.ceil(history_seconds / interval)))
        self.ticks = 0

    def tick(self) -> GpuSnapshot:
        """Take one sample now (on the caller's thread) and store it."""
        try:
            snapshot = self.source.sample()
        except Exception as exc:
            log.exception("GPU sampling failed")
            snapshot = GpuSnapshot(
                taken_at=_utc_now(),
                gpus=(),
                status=f"sampler error: {type(exc).__name__}: {exc}",
                simulated=getattr(self.source, "simulated", False),
                detail=str(exc),
            )
        with self._lock:
            self._latest = snapshot
            self._history.append(snapshot)
            self.ticks += 1
        if self.on_snapshot is not None:
            try:
                self.on_snapshot(snapshot)
            except Exception:
                log.exception("GPU snapshot callback failed")
        return snapshot

    def latest(self) -> GpuSnapshot | None:
        with self._lock:
            return self._latest

    def history(self, index: int, field: str) -> tuple[float | None, ...]:
        """One field of GPU ``index`` over the kept history, oldest first (None: n/a or absent)."""
        if field not in GpuSample.__dataclass_fields__:
            raise ValueError(f"GpuSample has no field {field!r}")
        with self._lock:
            snapshots = tuple(self._history)
        values: list[float | None] = []
        for snapshot in snapshots:
            gpu = snapshot.gpu(index)
            values.append(getattr(gpu, field) if gpu is not None else None)
        return tuple(values)
