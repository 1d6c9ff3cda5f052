"""GPU energy counters of an experiment: read at its start, then with every write of its state file."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from datetime import datetime

from runtime.gpu.source import GpuSource
from state.native import EnergyInfo


class EnergyMeter:
    """The GPU source that counts an experiment's energy, opened only when its GPUs have counters."""

    def __init__(self, source: GpuSource, gpus: list[int]) -> None:
        self.source = source
        self.gpus = gpus

    @classmethod
    def open(
        cls, gpus: Iterable[int], previous: EnergyInfo | None, log: Callable[[str], None]
    ) -> tuple[EnergyMeter, EnergyInfo] | None:
        """The meter and the experiment's ``EnergyInfo`` for this attempt (a resume's carries what was used before), or None."""
        wanted = sorted(set(gpus))
        if not wanted:
            return None
        from runtime.gpu.factory import make_gpu_source

        try:
            source = make_gpu_source()
            readings = source.read_energy_mj(wanted)
        except Exception as exc:
            log(f"no GPU energy counters: {type(exc).__name__}: {exc}")
            return None
        if not readings:
            log(f"no GPU energy counters for GPUs {wanted} (no NVML, or no such GPU)")
            with contextlib.suppress(Exception):
                source.close()
            return None
        start, latest = _continued(previous, {str(k): int(v) for k, v in readings.items()})
        info = EnergyInfo(
            gpu_ids=sorted({*wanted, *(int(k) for k in latest)}),
            start_mj=start,
            latest_mj=latest,
            simulated=bool(getattr(source, "simulated", False)),
            updated_at=datetime.now().astimezone(),
        )
        return cls(source, wanted), info

    def refresh(self, info: EnergyInfo) -> None:
        """Update ``info`` with the latest counters; a failed read leaves it as it was."""
        try:
            readings = self.source.read_energy_mj(self.gpus)
        except Exception:
            return
        info.latest_mj.update({str(k): int(v) for k, v in readings.items() if str(k) in info.start_mj})
        info.updated_at = datetime.now().astimezone()

    def close(self) -> None:
        self.source.close()


def _continued(previous: EnergyInfo | None, readings: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """``start_mj`` and ``latest_mj`` for an attempt that reads ``readings`` now.

    What earlier attempts used is carried over, and the time between them is not
    counted: each GPU's start is moved back by what it had used (so a counter that was
    reset by a reboot in between loses nothing either), and a GPU that this attempt does
    not use keeps what it used as a closed span. A GPU's counter counts every process on
    it, as NVML's does: shared GPUs are not split between experiments.
    """
    used: dict[str, int] = {}
    if previous is not None:
        for gpu, begun in previous.start_mj.items():
            if gpu in previous.latest_mj:
                used[gpu] = max(0, previous.latest_mj[gpu] - begun)
    start = {gpu: now - used.pop(gpu, 0) for gpu, now in readings.items()}
    latest = dict(readings)
    for gpu, joules in used.items():
        start[gpu], latest[gpu] = 0, joules
    return start, latest
