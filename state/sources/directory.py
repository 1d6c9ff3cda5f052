"""A state directory as a source: one JSON file per experiment, every format.

Study folders one level down (llenergymeasure 0.7.0's ``results/<study>/manifest.json``)
are entries too, keyed by the folder's name. Wraps one ``StateStore`` and serialises access to it (scans from the watcher's
thread, actions from workers). Change hints are absolute paths a watcher saw
change: the store re-stats just those files and re-reads the ones whose inode,
mtime_ns or size changed. A slow file (one huge experiment rewritten without
pause) is re-read at most every ``cost / READ_DUTY`` seconds, so it cannot eat
the watcher's thread. The watching itself (watchfiles) lives in runtime/.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from state.paths import MANIFEST_NAME, SIDECAR_DIR, study_manifest_name
from state.record import BrokenRecord, Entry, ExperimentRecord, FileVersion
from state.sources.base import MARK_STALE, RESUME, STOP, Delta
from state.store import ScanDelta, StateStore
from state.verdict import LivenessProbe, StaleVerdict, judge_record

if TYPE_CHECKING:
    from state.devices import DeviceSnapshot

#: A file slower to read than ``SLOW_READ_S`` is re-read at most every ``cost / READ_DUTY`` seconds,
#: so one huge file rewritten without pause (100,000 runs: about 1 s a parse) costs the
#: watcher at most a fifth of a core instead of all of it.
READ_DUTY = 0.2
#: Files read per batch of the first scan.
FIRST_SCAN_BATCH = 500
#: Files read in the first batch (the screen shows 30 to 60 rows).
FIRST_SCREEN_BATCH = 100


class _ReadAhead:
    """The first screen ``read_first_screen`` reads in a thread: (names left, delta) or the error, once done."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: tuple[list[str], Delta] | None = None
        self.error: BaseException | None = None

    def result(self) -> tuple[list[str], Delta]:
        """Waits for the read; raises what it raised."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


def source_name(root: Path) -> str:
    """The directory's label: its name, or its parent's for the usual ``.state`` folder."""
    absolute = Path(os.path.abspath(root))
    if absolute.name in (".state", "state", "") and absolute.parent.name:
        return absolute.parent.name
    return absolute.name or str(absolute)


def unique_source_names(names: Iterable[str]) -> list[str]:
    """Labels made unique (``state``, ``state-2``...) and free of ``:`` (the board's key separator)."""
    seen: set[str] = set()
    out = []
    for given in names:
        base = given.replace(":", "_") or "source"
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base}-{n}"
        seen.add(name)
        out.append(name)
    return out


class DirectorySource:
    """One state directory (``StateStore``) as a ``Source``."""

    def __init__(self, root: Path | str, *, read_only: bool = False, name: str | None = None, store: StateStore | None = None):
        self.store = store if store is not None else StateStore(root, read_only=read_only)
        self._root = Path(os.path.abspath(self.store.root))
        self._name = name or source_name(self._root)
        self._lock = threading.Lock()
        self._device_sigs: dict[str, FileVersion] | None = None
        #: Slow files changed but not re-read yet: name -> monotonic time it may be re-read.
        self._deferred: dict[str, float] = {}
        self._not_before: dict[str, float] = {}
        #: How long the last full rescan (nothing new to read, mostly ``lstat``) took.
        self.last_scan_seconds = 0.0
        #: The first scan's listing and first batch, read ahead by ``read_first_screen``.
        self._first_screen: _ReadAhead | None = None
        #: Whether ``first_screen`` handed that batch over (``initial_batches`` does not bring it again).
        self._first_shown = False

    # -- identity -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def location(self) -> str:
        return str(self.store.root)

    @property
    def root(self) -> Path:
        """The directory as an absolute path: watch events come back in this form."""
        return self._root

    @property
    def read_only(self) -> bool:
        return self.store.read_only

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[StateStore]:
        """The store, with scans held off (for actions that read and write it)."""
        with self._lock:
            yield self.store

    def entries(self) -> Mapping[str, Entry]:
        return self.store.entries

    # -- scanning ---------------------------------------------------------------------
    def _delta(self, scan: ScanDelta, *, devices: bool) -> Delta:
        entries = self.store.entries
        upserts = {k: entries[k] for k in (*scan.added, *scan.changed) if k in entries}
        snapshots, errors = self._devices_if_changed() if devices else (None, ())
        return Delta(upserts, scan.removed, devices=snapshots, device_errors=errors)

    def read_first_screen(self, probe: LivenessProbe, clock: Callable[[], datetime]) -> None:
        """Start the first scan's listing and first batch now, in a thread of their own, the
        running rows among them judged with ``probe``: ``first_screen`` hands the batch over
        once read, else ``initial_batches`` begins with it.

        The dashboard calls this before it loads Textual. Timestamps from spawn on a pty
        (10,000 files) had the listing start with the screen's first layout and end 50-90 ms
        later (the lister and the first frame took turns at the one GIL), the screen drawn
        empty meanwhile, then the first rows read and drawn again. Read during Textual's
        import, they are on the board before the screen is composed.
        """
        if self._first_screen is not None:
            return
        ahead = self._first_screen = _ReadAhead()

        def read() -> None:
            try:
                rest, delta = self._read_first_batch(FIRST_SCREEN_BATCH)
                verdicts = self.judge(delta.upserts.values(), probe, clock())
                if verdicts:
                    delta = Delta(delta.upserts, delta.removed, verdicts, delta.devices, delta.device_errors)
                ahead.value = (rest, delta)
            except BaseException as exc:  # raised by initial_batches, in its caller's thread
                ahead.error = exc
            finally:
                ahead.done.set()

        threading.Thread(target=read, name=f"first screen of {self._name}", daemon=True).start()

    def wait_first_screen(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the batch ``read_first_screen`` reads; whether it is in."""
        ahead = self._first_screen
        return ahead is not None and ahead.done.wait(timeout)

    def first_screen(self) -> Delta | None:
        """The batch ``read_first_screen`` read, if it is in (``initial_batches`` then goes on from
        the next one); None while it is being read, or where it failed or was never asked for."""
        ahead = self._first_screen
        if ahead is None or self._first_shown or ahead.value is None:
            return None
        self._first_shown = True
        return ahead.value[1]

    def _read_first_batch(self, batch: int) -> tuple[list[str], Delta]:
        """The delta of reading the first ``batch`` candidate names, and the names left to read."""
        names = self.store.candidate_names()
        with self._lock:
            return names[batch:], self._delta(self.store.refresh(names[:batch]), devices=True)

    def initial_batches(self, batch: int = FIRST_SCAN_BATCH) -> Iterator[Delta]:
        ahead, self._first_screen = self._first_screen, None
        shown, self._first_shown = self._first_shown, False
        # The first batch is a screenful or two: the first rows show before 500 files are read.
        rest, delta = ahead.result() if ahead is not None else self._read_first_batch(min(FIRST_SCREEN_BATCH, batch))
        if not shown:
            yield delta
        for start in range(0, len(rest), batch):
            with self._lock:
                delta = self._delta(self.store.refresh(rest[start : start + batch]), devices=False)
            yield delta
        yield self.reconcile()

    def reconcile(self) -> Delta:
        return self._reconcile(devices=True)

    def _reconcile(self, *, devices: bool) -> Delta:
        with self._lock:
            started = time.perf_counter()
            scan = self.store.scan()
            self.last_scan_seconds = time.perf_counter() - started
            return self._delta(scan, devices=devices)

    @property
    def has_deferred(self) -> bool:
        """Whether changed files wait for a re-read (``hint(set())`` re-reads those now due)."""
        return bool(self._deferred)

    def hint(self, paths: set[str]) -> Delta:
        names = set()
        devices = False
        for raw in paths:
            path = Path(raw)
            if path.parent == self.root:
                # A file, or a study folder that just appeared (its manifest may be there already).
                names.add(path.name if path.suffix == ".json" else study_manifest_name(path.name))
            elif path.parent.parent == self.root and path.name == MANIFEST_NAME:
                names.add(study_manifest_name(path.parent.name))
            elif path.parent.name == "devices" and path.parent.parent.name == SIDECAR_DIR:
                devices = True
            elif path == self.root:
                return self.reconcile()
        names = self._throttle(names)
        if not names and not devices:
            return Delta()
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
        sigs: dict[str, FileVersion] = {}
        listed = True
        try:
            for path in sorted(directory.glob("*.json")):
                sigs[path.name] = FileVersion.of(path.stat())
        except OSError:
            sigs, listed = {}, False
        if sigs == self._device_sigs:
            return None, ()
        self._device_sigs = sigs
        if listed and not sigs:  # no snapshot to read: the device models need not load
            return (), ()
        from state.devices import read_device_snapshots  # pydantic models: only once a device file exists

        errors: list[str] = []
        snapshots = read_device_snapshots(directory, on_error=lambda path, reason: errors.append(f"{path.name}: {reason}"))
        return tuple(snapshots), tuple(errors)

    # -- verdicts and actions -----------------------------------------------------------
    def judge(self, entries: Iterable[Entry], probe: LivenessProbe, now: datetime) -> dict[str, StaleVerdict]:
        """Verdicts judged on this host (reads /proc: call from a worker thread)."""
        running = [e for e in entries if isinstance(e, ExperimentRecord) and e.status == "running"]
        if not running:
            return {}
        here = probe.host_facts()
        tools = getattr(probe, "llenergymeasure_processes", None)
        if tools is not None:
            tools = functools.cache(tools)  # one process list for every study judged now
        return {r.key: judge_record(r, here=here, probe=probe.probe, now=now, tool_processes=tools) for r in running}

    def allowed_actions(self, entry: Entry) -> frozenset[str]:
        if self.read_only or isinstance(entry, BrokenRecord):
            return frozenset()
        return frozenset({RESUME, MARK_STALE, STOP})


__all__ = ["DirectorySource", "READ_DUTY", "source_name", "unique_source_names"]
