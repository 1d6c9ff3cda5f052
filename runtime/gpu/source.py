"""What every GPU source offers: NVML and the simulation are interchangeable behind ``GpuSource``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

from state.telemetry import GpuSnapshot

Clock = Callable[[], float]
WallClock = Callable[[], datetime]


def utc_now() -> datetime:
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
