"""NvmlGpuSource against the real (absent) NVML and a fake at the pynvml level; the simulation; the sampler."""

from __future__ import annotations

import threading
import time

import pynvml
import pytest

from runtime.gpu.factory import make_gpu_source
from runtime.gpu.nvml import NvmlGpuSource
from runtime.gpu.sampler import GpuSampler
from runtime.gpu.simulated import SimulatedGpuSource
from state.telemetry import (
    GPU_STATUS_DRIVER_MISMATCH,
    GPU_STATUS_NO_DRIVER,
    GPU_STATUS_NO_LIBRARY,
    GPU_STATUS_OK,
    GpuSnapshot,
)

from .fake_nvml import FakeGpu, FakeNvml


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def _has_real_nvml() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


@pytest.mark.skipif(_has_real_nvml(), reason="this check is for machines without an NVIDIA driver")
def test_no_nvml_on_this_machine_gives_a_status_not_an_exception():
    source = NvmlGpuSource()
    snapshot = source.sample()
    assert snapshot.status in (GPU_STATUS_NO_LIBRARY, GPU_STATUS_NO_DRIVER)
    assert snapshot.gpus == () and not snapshot.ok and not snapshot.simulated
    assert snapshot.detail
    assert source.read_energy_mj([0, 1]) == {}
    source.close()


def test_init_is_retried_every_60_seconds_and_succeeds_when_the_driver_appears(monkeypatch):
    fake = FakeNvml([FakeGpu()], init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED).install(monkeypatch)
    clock = FakeClock()
    source = NvmlGpuSource(clock=clock)
    assert source.sample().status == GPU_STATUS_NO_DRIVER
    clock.now += 59.0
    assert source.sample().status == GPU_STATUS_NO_DRIVER
    assert fake.calls["init"] == 1
    clock.now += 1.5
    fake.init_error = None
    snapshot = source.sample()
    assert fake.calls["init"] == 2
    assert snapshot.ok and len(snapshot.gpus) == 1
    assert snapshot.driver_version == "550.54.15"


@pytest.mark.parametrize(
    "code, status",
    [
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, GPU_STATUS_NO_LIBRARY),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, GPU_STATUS_NO_DRIVER),
        (pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, GPU_STATUS_DRIVER_MISMATCH),
    ],
)
def test_init_failures_become_clear_statuses(monkeypatch, code, status):
    FakeNvml([FakeGpu()], init_error=code).install(monkeypatch)
    snapshot = NvmlGpuSource().sample()
    assert snapshot.status == status
    assert snapshot.gpus == ()


def test_fields_processes_and_energy_are_read(monkeypatch):
    gpu = FakeGpu(compute=[(4242, 3 * 2**30)], graphics=[(4242, 2**30), (77, None)])
    FakeNvml([gpu]).install(monkeypatch)
    source = NvmlGpuSource()
    sample = source.sample().gpus[0]
    assert (sample.index, sample.name, sample.uuid) == (0, "NVIDIA Fake 80GB", "GPU-fake")
    assert sample.utilization_gpu == 50.0 and sample.utilization_memory == 20.0
    assert sample.memory_used_bytes == 10 * 2**30 and sample.memory_total_bytes == 80 * 2**30
    assert sample.power_watts == 250.0 and sample.power_limit_watts == 400.0
    assert sample.energy_mj == 1_000_000
    assert sample.temperature_c == 60.0 and sample.fan_percent == 40.0
    procs = {p.pid: p for p in sample.processes}
    assert procs[4242].type == "compute+graphics" and procs[4242].used_memory_bytes == 3 * 2**30
    assert procs[77].type == "graphics" and procs[77].used_memory_bytes is None
    assert sample.error is None
    assert source.read_energy_mj([0]) == {0: 1_000_000}


def test_unsupported_fields_are_na_and_the_rest_is_read(monkeypatch):
    gpu = FakeGpu(unsupported={"FanSpeed", "TotalEnergyConsumption", "PowerUsage"})
    fake = FakeNvml([gpu]).install(monkeypatch)
    source = NvmlGpuSource()
    sample = source.sample().gpus[0]
    assert sample.fan_percent is None and sample.energy_mj is None and sample.power_watts is None
    assert sample.power_limit_watts == 400.0 and sample.temperature_c == 60.0
    assert source.read_energy_mj([0]) == {}
    # Not-supported is a property of the hardware: it is not asked again each tick.
    source.sample()
    assert fake.calls["FanSpeed"] == 1


def test_a_lost_gpu_marks_only_that_gpu(monkeypatch):
    gpus = [FakeGpu(uuid="GPU-a"), FakeGpu(uuid="GPU-b"), FakeGpu(uuid="GPU-c", lost_on_handle=True)]
    fake = FakeNvml(gpus).install(monkeypatch)
    source = NvmlGpuSource()
    source.sample()
    gpus[1].lost = True
    snapshot = source.sample()
    assert snapshot.ok
    first, lost, unknown = snapshot.gpus
    assert first.error is None and first.utilization_gpu == 50.0
    assert lost.error == "GPU lost" and lost.uuid == "GPU-b" and lost.utilization_gpu is None
    assert unknown.error == "GPU lost"
    assert fake.calls["init"] == 1


def test_older_drivers_fall_back_to_v2_process_calls(monkeypatch):
    fake = FakeNvml([FakeGpu(compute=[(5, 100)])], has_v3=False).install(monkeypatch)
    source = NvmlGpuSource()
    assert [p.pid for p in source.sample().gpus[0].processes] == [5]
    assert [p.pid for p in source.sample().gpus[0].processes] == [5]
    assert fake.calls["compute_v3"] == 1
    assert fake.calls["compute_v2"] == 2


def test_driver_disappearing_mid_run_returns_to_retrying(monkeypatch):
    fake = FakeNvml([FakeGpu()]).install(monkeypatch)
    clock = FakeClock()
    source = NvmlGpuSource(clock=clock)
    assert source.sample().ok
    fake.initialized = False
    fake.init_error = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    assert source.sample().status.startswith("NVML error")
    clock.now += 61
    assert source.sample().status == GPU_STATUS_NO_DRIVER


def test_simulated_source_is_deterministic_and_labelled():
    clock = FakeClock(0.0)
    a = SimulatedGpuSource(count=3, seed=7, clock=clock)
    b = SimulatedGpuSource(count=3, seed=7, clock=clock)
    a.assign(1234, 1, memory_bytes=2**30)
    b.assign(1234, 1, memory_bytes=2**30)
    clock.now = 10.0
    sa, sb = a.sample(), b.sample()
    assert sa.simulated and sa.ok and len(sa.gpus) == 3
    assert [g.processes for g in sa.gpus] == [g.processes for g in sb.gpus]
    assert sa.gpus[1].processes[0].pid == 1234
    assert sa.gpus[1].memory_used_bytes == 2**30 + 512 * 2**20
    assert [g.utilization_gpu for g in sa.gpus] == [g.utilization_gpu for g in sb.gpus]
    assert sa.gpus[1].utilization_gpu >= 70.0 and sa.gpus[0].utilization_gpu < 10.0
    a.unassign(1234)
    assert a.sample().gpus[1].processes == ()


def test_simulated_energy_integrates_power_and_ignores_read_frequency():
    clock = FakeClock(100.0)
    source = SimulatedGpuSource(count=2, seed=3, clock=clock)
    other = SimulatedGpuSource(count=2, seed=3, clock=clock)
    source.assign(42, 0)
    other.assign(42, 0)
    before = source.read_energy_mj([0, 1])
    # Integrate the sampled power numerically over 30 s (midpoint rule, 0.01 s steps).
    integral = {0: 0.0, 1: 0.0}
    for step in range(3000):
        clock.now = 100.0 + (step + 0.5) * 0.01
        for gpu in source.sample().gpus:
            integral[gpu.index] += gpu.power_watts * 0.01 * 1000.0
    clock.now = 130.0
    after = source.read_energy_mj([0, 1])
    for i in (0, 1):
        assert after[i] - before[i] == pytest.approx(integral[i], rel=2e-3)
    assert after[0] - before[0] > 30 * 0.85 * source.sample().gpus[0].power_limit_watts * 1000 * 0.5
    # A source read once agrees with one read 3000 times: the runner and the dashboard see one counter.
    assert other.read_energy_mj([0, 1]) == after
    # Assigning a process changes power, not the counter's value at that instant.
    at = source.read_energy_mj([1])[1]
    source.assign(7, 1)
    assert abs(source.read_energy_mj([1])[1] - at) <= 1


def test_make_gpu_source_honours_the_environment(monkeypatch):
    monkeypatch.setenv("EXPWATCH_SIMULATE_GPUS", "2")
    source = make_gpu_source()
    assert source.simulated and len(source.sample().gpus) == 2
    assert isinstance(make_gpu_source(0), NvmlGpuSource)
    monkeypatch.setenv("EXPWATCH_SIMULATE_GPUS", "many")
    with pytest.raises(ValueError, match="EXPWATCH_SIMULATE_GPUS"):
        make_gpu_source()


def test_sampler_keeps_running_without_nvml_and_stops_promptly(monkeypatch):
    fake = FakeNvml([FakeGpu()], init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND).install(monkeypatch)
    clock = FakeClock()
    seen: list[GpuSnapshot] = []
    sampler = GpuSampler(NvmlGpuSource(clock=clock), interval=0.01, on_snapshot=seen.append)
    assert sampler.latest() is None
    with sampler:
        wait_for(lambda: sampler.ticks >= 3)
        assert sampler.latest().status == GPU_STATUS_NO_LIBRARY
        assert fake.calls["init"] == 1
        fake.init_error = None
        clock.now += 60.0
        wait_for(lambda: sampler.latest().ok)
    assert not sampler.running
    assert seen and seen[-1].ok


def test_sampler_history_and_stop_during_a_long_interval():
    source = SimulatedGpuSource(count=2, seed=1)
    sampler = GpuSampler(source, interval=3600.0, history_seconds=3600.0 * 3)
    sampler.start()
    wait_for(lambda: sampler.ticks == 1)
    for _ in range(4):
        sampler.tick()
    started = time.monotonic()
    assert sampler.stop(timeout=2.0)
    assert time.monotonic() - started < 1.0
    temps = sampler.history(0, "temperature_c")
    assert len(temps) == 3  # the ring keeps history_seconds / interval snapshots
    assert all(isinstance(t, float) for t in temps)
    assert sampler.history(5, "power_watts") == (None, None, None)
    with pytest.raises(ValueError):
        sampler.history(0, "nonsense")


def test_a_failing_source_or_callback_does_not_kill_the_sampler():
    class Broken:
        simulated = False

        def __init__(self):
            self.calls = 0

        def sample(self):
            self.calls += 1
            raise RuntimeError("boom")

        def read_energy_mj(self, gpu_ids):
            return {}

        def close(self):
            pass

    def bad_callback(snapshot):
        raise ValueError("callback")

    sampler = GpuSampler(Broken(), interval=0.01, on_snapshot=bad_callback)
    with sampler:
        wait_for(lambda: sampler.ticks >= 3)
    assert sampler.latest().status == "sampler error: RuntimeError: boom"
    assert threading.active_count() >= 1
