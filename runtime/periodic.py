"""A cancellable thread that calls ``tick()`` every ``interval`` seconds.

The samplers (GPUs, processes) share it: ``stop()`` wakes the wait at once and
joins with a bound, so a call stuck in a driver cannot hang the caller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class PeriodicThread:
    thread_name = "expwatch-periodic"

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> Any:
        raise TypeError(f"{type(self).__name__} must define tick()")

    def start(self):  # noqa: ANN201 - returns the subclass instance
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self._clock()
            self.tick()
            self._stop.wait(max(0.0, self.interval - (self._clock() - started)))

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop the thread; True if it ended within ``timeout``."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self):  # noqa: ANN204
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
