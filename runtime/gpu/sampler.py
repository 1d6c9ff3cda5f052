"""The GPU sampling thread: readers get the latest snapshot and a short history, never wait on NVML."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from runtime.gpu.source import Clock, GpuSource, utc_now
from runtime.periodic import PeriodicThread
from state.telemetry import GpuSample, GpuSnapshot

log = logging.getLogger(__name__)


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
                taken_at=utc_now(),
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
