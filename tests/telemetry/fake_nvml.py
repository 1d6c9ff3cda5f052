"""A fake NVML at the pynvml function level: the real ``NvmlGpuSource`` code runs against it.

``FakeNvml.install(monkeypatch)`` replaces the pynvml functions the source
calls; errors are raised as real ``pynvml.NVMLError`` subclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml


def nvml_error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


@dataclass
class FakeGpu:
    name: str = "NVIDIA Fake 80GB"
    uuid: str = "GPU-fake"
    util: tuple[int, int] = (50, 20)
    memory: tuple[int, int] = (10 * 2**30, 80 * 2**30)
    power_mw: int = 250_000
    limit_mw: int = 400_000
    energy_mj: int = 1_000_000
    temperature: int = 60
    fan: int = 40
    compute: list[tuple[int, int | None]] = field(default_factory=list)
    graphics: list[tuple[int, int | None]] = field(default_factory=list)
    unsupported: set[str] = field(default_factory=set)
    """Function names (without the nvmlDeviceGet prefix) that raise NotSupported."""
    lost: bool = False
    lost_on_handle: bool = False


class FakeNvml:
    def __init__(self, gpus: list[FakeGpu] | None = None, *, init_error: int | None = None,
                 has_v3: bool = True):
        self.gpus = gpus if gpus is not None else []
        self.init_error = init_error
        self.has_v3 = has_v3
        self.calls: dict[str, int] = {}
        self.initialized = False

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def _gpu(self, handle: Any, what: str) -> FakeGpu:
        gpu = self.gpus[handle.index]
        if gpu.lost:
            raise nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)
        if what in gpu.unsupported:
            raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu

    def install(self, monkeypatch) -> FakeNvml:
        def init():
            self._count("init")
            if self.init_error is not None:
                raise nvml_error(self.init_error)
            self.initialized = True

        def shutdown():
            self._count("shutdown")
            self.initialized = False

        def count():
            self._count("count")
            if not self.initialized:
                raise nvml_error(pynvml.NVML_ERROR_UNINITIALIZED)
            return len(self.gpus)

        def handle(index):
            self._count("handle")
            if self.gpus[index].lost_on_handle:
                raise nvml_error(pynvml.NVML_ERROR_UNKNOWN)
            return SimpleNamespace(index=index)

        def field_fn(what, read):
            def fn(handle, *args):
                self._count(what)
                return read(self._gpu(handle, what))
            return fn

        def procs(kind, version):
            def fn(handle):
                self._count(f"{kind}{version}")
                if version == "_v3" and not self.has_v3:
                    raise nvml_error(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
                gpu = self._gpu(handle, kind)
                return [SimpleNamespace(pid=pid, usedGpuMemory=mem) for pid, mem in getattr(gpu, kind)]
            return fn

        patches = {
            "nvmlInit": init,
            "nvmlShutdown": shutdown,
            "nvmlSystemGetDriverVersion": lambda: "550.54.15",
            "nvmlSystemGetNVMLVersion": lambda: "12.550.54.15",
            "nvmlDeviceGetCount": count,
            "nvmlDeviceGetHandleByIndex": handle,
            "nvmlDeviceGetName": field_fn("Name", lambda g: g.name),
            "nvmlDeviceGetUUID": field_fn("UUID", lambda g: g.uuid),
            "nvmlDeviceGetUtilizationRates": field_fn(
                "UtilizationRates", lambda g: SimpleNamespace(gpu=g.util[0], memory=g.util[1])
            ),
            "nvmlDeviceGetMemoryInfo": field_fn(
                "MemoryInfo", lambda g: SimpleNamespace(used=g.memory[0], total=g.memory[1], free=g.memory[1] - g.memory[0])
            ),
            "nvmlDeviceGetTemperature": field_fn("Temperature", lambda g: g.temperature),
            "nvmlDeviceGetPowerUsage": field_fn("PowerUsage", lambda g: g.power_mw),
            "nvmlDeviceGetEnforcedPowerLimit": field_fn("EnforcedPowerLimit", lambda g: g.limit_mw),
            "nvmlDeviceGetTotalEnergyConsumption": field_fn("TotalEnergyConsumption", lambda g: g.energy_mj),
            "nvmlDeviceGetFanSpeed": field_fn("FanSpeed", lambda g: g.fan),
        }
        for kind, attr in (("Compute", "compute"), ("Graphics", "graphics")):
            for version in ("_v3", "_v2", ""):
                patches[f"nvmlDevice Get{kind}RunningProcesses{version}".replace(" ", "")] = procs(attr, version)
        for name, fn in patches.items():
            assert hasattr(pynvml, name), name
            monkeypatch.setattr(pynvml, name, fn)
        return self


def make_gpus(count: int, procs_per_gpu: int = 0, first_pid: int = 10_000) -> list[FakeGpu]:
    pid = first_pid
    gpus = []
    for i in range(count):
        compute = []
        for _ in range(procs_per_gpu):
            compute.append((pid, 2**30))
            pid += 1
        gpus.append(FakeGpu(name=f"NVIDIA Fake {i}", uuid=f"GPU-fake-{i}", compute=compute))
    return gpus
