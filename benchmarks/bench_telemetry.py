"""Telemetry sampler cost per tick: 8 GPUs, 100 processes.

The NVML path is the real ``NvmlGpuSource`` code over a fake NVML at the
pynvml function level (tests/telemetry/fake_nvml.py); the processes are 100
real ``sleep`` children, so psutil does its real /proc reads. Goal: at 1 Hz,
at most 2% of one core, i.e. <= 20 ms of CPU per tick for everything.

    .venv/bin/python benchmarks/bench_telemetry.py [--ticks 200]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402  (only for MonkeyPatch, to install the fake NVML)

from runtime.gpu.nvml import NvmlGpuSource  # noqa: E402
from runtime.gpu.sampler import GpuSampler  # noqa: E402
from runtime.gpu.simulated import SimulatedGpuSource  # noqa: E402
from runtime.procs import ProcessSampler  # noqa: E402
from state.native import OwnerIdentity  # noqa: E402
from state.record import ExperimentRecord, FileVersion, ProcessRow, StateFormat  # noqa: E402
from state.telemetry import attribute_gpu_processes  # noqa: E402

GPUS = 8
PROCESSES = 100


def _load_fake_nvml():
    spec = importlib.util.spec_from_file_location("fake_nvml", ROOT / "tests/telemetry/fake_nvml.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["fake_nvml"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _cpu_ms(fn, ticks: int) -> list[float]:
    """CPU time (this thread) of each call, in milliseconds."""
    samples = []
    for _ in range(ticks):
        start = time.thread_time()
        fn()
        samples.append((time.thread_time() - start) * 1000.0)
    return samples


def _records(pids: list[int], start_times: dict[int, float]) -> list[ExperimentRecord]:
    """10 experiments with 10 workers each, owning the benchmark's processes."""
    import socket

    host = socket.gethostname()
    records = []
    for e in range(len(pids) // 10):
        chunk = pids[e * 10 : (e + 1) * 10]
        workers = tuple(
            OwnerIdentity(host=host, pid=p, start_time=start_times.get(p), role="worker", process_index=i)
            for i, p in enumerate(chunk)
        )
        records.append(
            ExperimentRecord(
                key=f"exp{e}", path=ROOT / f"exp{e}.json", format=StateFormat.EXPWATCH,
                experiment_id=f"exp-{e}", status="running", version=FileVersion(1, 1, 1),
                workers=workers,
                processes=tuple(ProcessRow(index=i, status="running", current_step="decode") for i in range(10)),
            )
        )
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=200)
    args = parser.parse_args()

    children = [subprocess.Popen(["sleep", "600"]) for _ in range(PROCESSES)]
    pids = [c.pid for c in children]
    monkeypatch = pytest.MonkeyPatch()
    try:
        fake = _load_fake_nvml()
        gpus = fake.make_gpus(GPUS)
        for i, pid in enumerate(pids):
            gpus[i % GPUS].compute.append((pid, 2**30))
        fake.FakeNvml(gpus).install(monkeypatch)

        nvml = NvmlGpuSource()
        assert nvml.sample().ok
        procs = ProcessSampler()
        procs.sample(pids)  # prime cpu_percent and keep the Process objects, as the sampler does
        start_times = procs.start_times(pids)
        records = _records(pids, start_times)
        snapshot = nvml.sample()
        assert sum(len(g.processes) for g in snapshot.gpus) == PROCESSES
        found = attribute_gpu_processes(snapshot, records, start_times=start_times)
        assert len(found) == PROCESSES and all(a.confident for a in found.values())

        def whole_tick() -> None:
            snap = nvml.sample()
            live = [p.pid for g in snap.gpus for p in g.processes]
            procs.sample(live)
            attribute_gpu_processes(snap, records, start_times=procs.start_times(live))

        simulated = SimulatedGpuSource(count=GPUS)
        rows = [
            ("NvmlGpuSource.sample (fake NVML, 8 GPUs, 100 procs)", _cpu_ms(nvml.sample, args.ticks)),
            ("SimulatedGpuSource.sample (8 GPUs)", _cpu_ms(simulated.sample, args.ticks)),
            ("ProcessSampler.sample (100 live pids)", _cpu_ms(lambda: procs.sample(pids), args.ticks)),
            ("ProcessSampler.start_times (100 pids)", _cpu_ms(lambda: procs.start_times(pids), args.ticks)),
            ("attribute_gpu_processes (100 procs, 10 exps)",
             _cpu_ms(lambda: attribute_gpu_processes(snapshot, records, start_times=start_times), args.ticks)),
            ("whole tick (NVML + psutil + attribution)", _cpu_ms(whole_tick, args.ticks)),
        ]

        # The sampler thread itself, end to end: CPU of the whole process over N ticks at a fast interval.
        ticks = min(args.ticks, 100)
        sampler = GpuSampler(nvml, interval=0.001)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sampler.start()
        while sampler.ticks < ticks:
            time.sleep(0.01)
        sampler.stop()
        cpu = (time.process_time() - cpu0) * 1000.0 / sampler.ticks
        wall = time.perf_counter() - wall0
    finally:
        monkeypatch.undo()
        for child in children:
            child.kill()
        for child in children:
            child.wait()

    print(f"bench_telemetry  {datetime.now(timezone.utc):%Y-%m-%d %H:%M}Z  ticks={args.ticks}  python {sys.version.split()[0]}")
    print(f"{'what':<52} {'median ms':>10} {'p95 ms':>8} {'% core @1Hz':>12}")
    for name, samples in rows:
        median = statistics.median(samples)
        p95 = statistics.quantiles(samples, n=20)[-1]
        print(f"{name:<52} {median:>10.3f} {p95:>8.3f} {median / 10.0:>11.2f}%")
    print(f"{'GpuSampler thread, process CPU per tick (mean)':<52} {cpu:>10.3f} {'':>8} {cpu / 10.0:>11.2f}%"
          f"   ({sampler.ticks} ticks in {wall:.2f} s)")
    total = statistics.median(rows[-1][1])
    verdict = "within" if total <= 20.0 else "OVER"
    print(f"goal: <= 20 ms CPU per tick (2% of one core at 1 Hz): whole tick median {total:.2f} ms, {verdict} the goal")
    return 0 if total <= 20.0 else 1


if __name__ == "__main__":
    sys.exit(main())
