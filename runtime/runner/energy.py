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
        """The meter and the experiment's first ``EnergyInfo`` (a resume keeps the first start), or None."""
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
        start = {str(k): int(v) for k, v in readings.items()}
        if previous is not None and previous.start_mj:
            start = {**start, **previous.start_mj}
        info = EnergyInfo(
            gpu_ids=wanted,
            start_mj=start,
            latest_mj={str(k): int(v) for k, v in readings.items()},
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
        info.latest_mj = {str(k): int(v) for k, v in readings.items()}
        info.updated_at = datetime.now().astimezone()

    def close(self) -> None:
        self.source.close()
