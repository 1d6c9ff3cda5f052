"""Publishing a workcell's status into the state directory, for the dashboard (which never opens hardware).

The snapshot file is rewritten atomically at every change and, with fresh
readings, every ``interval`` seconds, from the publisher's own thread: device
commands never wait on the disk.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from state.atomic import atomic_write_bytes
from state.devices import DeviceSnapshot

log = logging.getLogger(__name__)

PUBLISH_INTERVAL_S = 3.0


class SnapshotPublisher:
    """Writes ``snapshot()`` to ``path`` when told of a change, and ``refresh()``-es it when idle.

    A failed write is counted in ``errors`` and tried again at the next
    change or interval; it never stops the thread.
    """

    def __init__(
        self,
        path: Path,
        *,
        snapshot: Callable[[], DeviceSnapshot],
        refresh: Callable[[], None],
        tmp_dir: Path,
        interval: float = PUBLISH_INTERVAL_S,
        durable: bool = False,
        thread_name: str = "expwatch-devices-publish",
    ) -> None:
        self.path = path
        self.interval = interval
        self.errors = 0
        self._snapshot = snapshot
        self._refresh = refresh
        self._tmp_dir = tmp_dir
        self._durable = durable
        self._thread_name = thread_name
        self._write_lock = threading.Lock()
        self._changed = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(self) -> Path:
        """Write the current snapshot atomically; returns its path."""
        with self._write_lock:
            data = self._snapshot().to_json().encode()
            atomic_write_bytes(self.path, data, tmp_dir=self._tmp_dir, durable=self._durable)
        return self.path

    def changed(self) -> None:
        self._changed.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self._thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._closing.set()
        self._changed.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._closing.is_set():
            changed = self._changed.wait(self.interval)
            if self._closing.is_set():
                return
            self._changed.clear()
            if not changed:
                try:
                    self._refresh()
                except Exception:
                    log.warning("refreshing device readings failed", exc_info=True)
            try:
                self.publish()
            except OSError:
                self.errors += 1
                log.warning("publishing the device snapshot failed", exc_info=True)
