"""GPU telemetry: NVML (``nvml``) or a deterministic simulation (``simulated``), chosen by ``factory``,
sampled on one thread by ``GpuSampler`` (``sampler``).

``GpuSampler`` and ``make_gpu_source`` are importable from here as well: the
dashboard imports them under this name.
"""

from runtime.gpu.factory import make_gpu_source
from runtime.gpu.sampler import GpuSampler

__all__ = ["GpuSampler", "make_gpu_source"]
