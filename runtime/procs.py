"""CPU and memory of experiment owner processes, through psutil.

``psutil.Process.cpu_percent`` measures since the previous call on the same
object, so the objects are kept across polls (pid -> Process). A kept object
is checked against the live process's identity (psutil compares create
times) before use, so a reused PID gets a fresh object rather than the old
process's counters.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

import psutil

from runtime.periodic import PeriodicThread
from state.telemetry import ProcessUsage

log = logging.getLogger(__name__)


class ProcessSampler:
    """Polls a changing set of PIDs; cheap enough to run every second over hundreds."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._primed: set[int] = set()
        self._lock = threading.Lock()

    def _process(self, pid: int) -> psutil.Process | None:
        proc = self._procs.get(pid)
        if proc is not None:
            if proc.is_running():
                return proc
            self._forget(pid)
        try:
            proc = psutil.Process(pid)
        except (psutil.NoSuchProcess, ValueError):
            return None
        self._procs[pid] = proc
        return proc

    def _forget(self, pid: int) -> None:
        self._procs.pop(pid, None)
        self._primed.discard(pid)

    def process(self, pid: int) -> psutil.Process | None:
        """The kept ``psutil.Process`` for ``pid`` (the same object across polls), if it lives."""
        with self._lock:
            return self._process(pid)

    def sample(self, pids: Iterable[int]) -> dict[int, ProcessUsage]:
        """Usage of each PID. CPU% is None on a PID's first poll (that call only primes it)."""
        wanted = dict.fromkeys(int(p) for p in pids)
        result: dict[int, ProcessUsage] = {}
        with self._lock:
            for pid in list(self._procs):
                if pid not in wanted:
                    self._forget(pid)
            for pid in wanted:
                result[pid] = self._usage(pid)
        return result

    def _usage(self, pid: int) -> ProcessUsage:
        proc = self._process(pid)
        if proc is None:
            return ProcessUsage(pid=pid, cpu_percent=None, rss_bytes=None, alive=False)
        try:
            with proc.oneshot():
                if proc.status() == psutil.STATUS_ZOMBIE:
                    self._forget(pid)
                    return ProcessUsage(pid, None, None, alive=False, start_time=proc.create_time())
                cpu = proc.cpu_percent(interval=None)
                rss = proc.memory_info().rss
                start = proc.create_time()
        except psutil.NoSuchProcess:
            self._forget(pid)
            return ProcessUsage(pid=pid, cpu_percent=None, rss_bytes=None, alive=False)
        except psutil.AccessDenied:
            return ProcessUsage(pid=pid, cpu_percent=None, rss_bytes=None, alive=True)
        primed = pid in self._primed
        self._primed.add(pid)
        return ProcessUsage(
            pid=pid, cpu_percent=cpu if primed else None, rss_bytes=rss, alive=True, start_time=start
        )

    def start_times(self, pids: Iterable[int]) -> dict[int, float]:
        """pid -> create time (seconds since the epoch) of each live PID, for attribution."""
        found: dict[int, float] = {}
        with self._lock:
            for pid in dict.fromkeys(int(p) for p in pids):
                proc = self._process(pid)
                if proc is None:
                    continue
                try:
                    found[pid] = proc.create_time()
                except psutil.Error:
                    continue
        return found

    def forget_all(self) -> None:
        with self._lock:
            self._procs.clear()
            self._primed.clear()


class ProcessPoller(PeriodicThread):
    """Runs a ``ProcessSampler`` on a thread over the PIDs ``pids()`` names each tick.

    ``latest()`` returns the last result without waiting; ``stop()`` joins with a bound.
    """

    thread_name = "expwatch-proc-sampler"

    def __init__(
        self,
        pids: Callable[[], Iterable[int]],
        interval: float = 1.0,
        on_sample: Callable[[dict[int, ProcessUsage]], None] | None = None,
        *,
        sampler: ProcessSampler | None = None,
    ) -> None:
        super().__init__(interval)
        self.sampler = sampler or ProcessSampler()
        self._pids = pids
        self.on_sample = on_sample
        self._lock = threading.Lock()
        self._latest: dict[int, ProcessUsage] = {}

    def tick(self) -> dict[int, ProcessUsage]:
        try:
            usage = self.sampler.sample(self._pids())
        except Exception:
            log.exception("process sampling failed")
            usage = {}
        with self._lock:
            self._latest = usage
        if self.on_sample is not None:
            try:
                self.on_sample(usage)
            except Exception:
                log.exception("process sample callback failed")
        return usage

    def latest(self) -> dict[int, ProcessUsage]:
        with self._lock:
            return dict(self._latest)
