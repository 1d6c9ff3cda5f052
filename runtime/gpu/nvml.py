"""GPUs as NVML (nvidia-ml-py) reports them.

``NvmlGpuSource`` initialises NVML once and turns every per-field failure into
``None`` (n/a): a GPU that does not support a counter, or denies it, still
shows everything else. A lost GPU marks only itself. A missing library or
driver is a status on the snapshot, never an exception, and initialisation is
retried every ``retry_interval`` seconds so a driver loaded later is picked up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from runtime.gpu.source import Clock, WallClock, utc_now
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

INIT_RETRY_S = 60.0


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
        wall_clock: WallClock = utc_now,
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
