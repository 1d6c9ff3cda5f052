"""Follow a state directory: watch events as hints, re-stat and re-read, reconcile.

``StateDirMonitor`` owns one ``StateStore`` and serialises access to it; each
call returns a ``MonitorDelta`` of immutable entries that the UI can apply
without touching the store. watchfiles events only say where to look: the
store re-stats those files and re-reads the ones whose inode, mtime_ns or size
changed. A periodic full ``reconcile`` catches dropped events, and ``poll``
mode (network filesystems, where inotify sees nothing) is the same scan on a
timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from state.devices import DeviceSnapshot, read_device_snapshots
from state.paths import SIDECAR_DIR, is_candidate_state_file
from state.record import Entry
from state.store import ScanDelta, StateStore

#: watchfiles settings: group a burst of writes into one batch, but answer fast.
DEBOUNCE_MS = 40
STEP_MS = 20
#: With nothing changing, ``watch`` still yields an empty batch this often (deferred re-reads).
IDLE_YIELD_MS = 1000
#: A file slower to read than ``SLOW_READ_S`` is re-read at most every ``cost / READ_DUTY`` seconds,
#: so one huge file rewritten without pause (100,000 runs: about 1 s a parse) costs the
#: watcher at most a fifth of a core instead of all of it.
READ_DUTY = 0.2


@dataclass(frozen=True, slots=True)
class MonitorDelta:
    upserts: dict[str, Entry] = field(default_factory=dict)
    removed: tuple[str, ...] = ()
    devices: tuple[DeviceSnapshot, ...] | None = None
    """All device snapshots, when any of them changed (None: unchanged)."""
    device_errors: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.upserts or self.removed or self.devices is not None)


class StateDirMonitor:
    def __init__(self, store: StateStore):
        self.store = store
        self._lock = threading.Lock()
        self._device_sigs: dict[str, tuple[int, int, int]] | None = None
        self._root = Path(os.path.abspath(store.root))
        #: Slow files changed but not re-read yet: name -> monotonic time it may be re-read.
        self._deferred: dict[str, float] = {}
        #: How long the last full rescan (nothing new to read, mostly ``lstat``) took.
        self.last_scan_seconds = 0.0
        self._not_before: dict[str, float] = {}

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[StateStore]:
        """The store, with scans held off (for actions that read and write it)."""
        with self._lock:
            yield self.store

    @property
    def root(self) -> Path:
        """The directory as an absolute path: watch events come back in this form."""
        return self._root

    def _delta(self, scan: ScanDelta, *, devices: bool) -> MonitorDelta:
        entries = self.store.entries
        upserts = {k: entries[k] for k in (*scan.added, *scan.changed) if k in entries}
        snapshots, errors = self._devices_if_changed() if devices else (None, ())
        return MonitorDelta(upserts, scan.removed, snapshots, errors)

    def initial(self) -> MonitorDelta:
        """The first full scan (every file is an upsert)."""
        with self._lock:
            self.store.scan()
            snapshots, errors = self._devices_if_changed()
            return MonitorDelta(dict(self.store.entries), (), snapshots or (), errors)

    def initial_batches(self, batch: int = 500) -> Iterator[MonitorDelta]:
        """The first scan in batches, so the first rows reach the screen before the last file is read."""
        try:
            names = sorted(n for n in os.listdir(self.store.root) if is_candidate_state_file(n))
        except OSError:
            names = []
        first = True
        for start in range(0, len(names), batch):
            with self._lock:
                scan = self.store.refresh(names[start : start + batch])
                delta = self._delta(scan, devices=first)
            first = False
            yield delta
        with self._lock:
            started = time.perf_counter()
            scan = self.store.scan()
            self.last_scan_seconds = time.perf_counter() - started
            yield self._delta(scan, devices=first)

    def reconcile(self) -> MonitorDelta:
        """A full rescan: only files whose identity changed are re-read."""
        with self._lock:
            started = time.perf_counter()
            scan = self.store.scan()
            self.last_scan_seconds = time.perf_counter() - started
            return self._delta(scan, devices=True)

    @property
    def has_deferred(self) -> bool:
        """Whether changed files wait for a re-read (``hint(set())`` re-reads those now due)."""
        return bool(self._deferred)

    def hint(self, paths: set[str]) -> MonitorDelta:
        """Handle watcher events: ``paths`` are absolute paths that changed.

        Files that were slow to read last time are re-read at most every
        ``cost / READ_DUTY`` seconds; until then they wait in a deferred set
        that any later ``hint`` (an empty one will do) picks up when due.
        """
        names = set()
        devices = False
        for raw in paths:
            path = Path(raw)
            if path.parent == self.root:
                names.add(path.name)
            elif path.parent.name == "devices" and path.parent.parent.name == SIDECAR_DIR:
                devices = True
            elif path == self.root:
                return self.reconcile()
        names = self._throttle(names)
        if not names and not devices:
            return MonitorDelta()
        with self._lock:
            delta = self._delta(self.store.refresh(names), devices=devices)
            slow = self.store.slow_reads
            now = time.monotonic()
            for name in names:
                cost = slow.get(name)
                if cost is None:
                    self._not_before.pop(name, None)
                else:
                    self._not_before[name] = now + cost / READ_DUTY
            return delta

    def _throttle(self, names: set[str]) -> set[str]:
        now = time.monotonic()
        for name in names:
            if self._not_before.get(name, 0.0) > now:
                self._deferred.setdefault(name, self._not_before[name])
        due = {n for n, at in self._deferred.items() if at <= now}
        for name in due:
            del self._deferred[name]
        return (names - self._deferred.keys()) | due

    def _devices_if_changed(self) -> tuple[tuple[DeviceSnapshot, ...] | None, tuple[str, ...]]:
        directory = self.store.devices_dir
        sigs: dict[str, tuple[int, int, int]] = {}
        try:
            for path in sorted(directory.glob("*.json")):
                st = path.stat()
                sigs[path.name] = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            sigs = {}
        if sigs == self._device_sigs:
            return None, ()
        self._device_sigs = sigs
        errors: list[str] = []
        snapshots = read_device_snapshots(directory, on_error=lambda path, reason: errors.append(f"{path.name}: {reason}"))
        return tuple(snapshots), tuple(errors)

    async def watch(self, stop: asyncio.Event) -> AsyncIterator[set[str]]:
        """Batches of changed paths from watchfiles, until ``stop`` is set or the directory goes.

        An empty batch comes every ``IDLE_YIELD_MS`` when nothing changes, so a
        caller can ``hint`` deferred files once they are due. A directory
        removed or replaced leaves inotify watching the old one in silence, so
        the iteration ends (with ``stop`` unset) on an event for the directory
        itself or when another directory, or none, stands at the path (checked
        on every batch, quiet ones included; tmpfs may even reuse the inode,
        hence the event): the caller rescans and watches anew.
        """
        from watchfiles import awatch

        def interesting(_change: object, path: str) -> bool:
            p = Path(path)
            if p == self.root:
                return True
            if p.parent == self.root:
                return p.suffix == ".json"
            return p.parent.name == "devices" and p.suffix == ".json"

        watched = _dir_identity(self.root)
        root = str(self.root)
        async for changes in awatch(
            self.root,
            stop_event=stop,
            watch_filter=interesting,
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            rust_timeout=IDLE_YIELD_MS,
            yield_on_timeout=True,
            recursive=True,
            ignore_permission_denied=True,
        ):
            paths = {path for _change, path in changes}
            if root in paths or _dir_identity(self.root) != watched:
                return
            yield paths


def _dir_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None
