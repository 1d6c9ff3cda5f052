"""Which GPU source to use: NVML, or simulated GPUs when asked (``$EXPWATCH_SIMULATE_GPUS``)."""

from __future__ import annotations

import os

from runtime.gpu.nvml import NvmlGpuSource
from runtime.gpu.simulated import SimulatedGpuSource
from runtime.gpu.source import GpuSource

SIMULATE_ENV = "EXPWATCH_SIMULATE_GPUS"


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
