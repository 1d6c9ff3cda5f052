"""A Redis hub as a read-only source: the fleet's experiments, as their hosts published them.

The first scan reads every record hash; after it, ``follow`` reads the change
stream with ``XREAD BLOCK`` from the last id it saw and re-reads only the records
named there. A stream trimmed past that id, a hub that restarted or a broken
connection means a full rescan (what the stream lost is only ever a hint). While
the hub is unreachable the last picture stays, and ``status`` says since when.

Each host's GPU snapshot (with its attributions, judged there) is read about once
a second and kept, with a short utilisation history per GPU, for the fleet's GPU
panel (``fleet_gpus``); the App asks for it, nothing here draws.

A hub that restarted empty (no persistence) comes back without the records its
hosts published; their agents republish everything within seconds. Until a host's
agent has done so (its description is back on the hub), a rescan keeps that host's
rows as the last good picture, and ``status`` says so with its age: a restart never
blanks the fleet for the seconds the republication takes.

Verdicts are the hosts' own (only a host can probe its PIDs). A host whose lease
has expired is silent, not dead: its running experiments are shown as unknown,
with for how long it has been silent, whatever it said last.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from state.devices import DeviceSnapshot
from state.hub.actions import HubActions
from state.hub.codec import decode_entry, decode_gpus, decode_verdict, valid_host_name
from state.hub.connection import HubAddress, HubError, is_hub_url
from state.hub.schema import HostLease, Hub, HubRecord, event_id_before
from state.paths import unsafe_id_reason
from state.record import BrokenRecord, Entry, ExperimentRecord
from state.sources.base import MARK_STALE, RESUME, STOP, Delta
from state.sources.opening import SourceError, default_name
from state.durations import duration
from state.telemetry import GpuAttribution, GpuSnapshot, HostGpus
from state.verdict import Liveness, LivenessProbe, StaleVerdict

if TYPE_CHECKING:
    from state.sources.hub_reader import HubSnapshotReader

#: How long one ``XREAD`` waits for news; leases and device snapshots are looked at between reads.
BLOCK_MS = 1000
#: Leases older than this are read again before a verdict is given.
LEASE_REFRESH_S = 1.0
#: Retry waits after a failed read, doubling up to the most.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0
MAX_DEVICES_BYTES = 1024 * 1024
#: How often the hosts' GPU snapshots are read, and how many samples of each GPU's utilisation are kept.
GPU_REFRESH_S = 1.0
GPU_HISTORY = 120
#: How long a dashboard waits for a host's agent to answer an action request.
ACTION_WAIT_S = 10.0
#: Rows the hub lost (a restart) are kept this long at most for their host's agent to republish them.
HELD_MAX_S = 60.0
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def silent_verdict(host: str, lease: HostLease | None, said: StaleVerdict | None) -> StaleVerdict:
    """What is known of a running experiment on a host whose agent stopped renewing its lease."""
    evidence = (f"last published by the host: {said.liveness.value}: {said.reason}",) if said else ()
    if lease is None:
        return StaleVerdict(Liveness.UNKNOWN, f"host {host} has no agent lease on the hub", evidence)
    return StaleVerdict(Liveness.UNKNOWN, f"host {host} silent for {duration(lease.silent_s)} (agent lease expired)", evidence)


class HubSource:
    """The experiments of every host publishing into one hub (one fleet prefix)."""

    def __init__(self, url: str | HubAddress, *, name: str | None = None, block_ms: int = BLOCK_MS, observer: bool = False) -> None:
        self.hub = Hub(url, timeout=5.0 + block_ms / 1000)
        #: Actions asked of the hosts' agents (its own connection: an ask blocks until the answer).
        self.actions = HubActions(Hub(self.hub.address, timeout=5.0 + ACTION_WAIT_S))
        self.observer = observer
        self._name = name or default_name(self.hub.address.shown)
        self._block_ms = block_ms
        self._lock = threading.RLock()
        #: Held through a full scan: the App's first scan and ``follow``'s start on another thread read the hub once, not twice at once.
        self._scan_lock = threading.RLock()
        self._entries: dict[str, Entry] = {}
        self._said: dict[str, StaleVerdict | None] = {}
        self._by_redis_key: dict[str, str] = {}
        self._leases: dict[str, HostLease] = {}
        self._leases_at = 0.0
        self._devices_raw: dict[str, bytes] = {}
        self._gpus_raw: dict[str, bytes] = {}
        self._gpus_decoded: dict[str, tuple[GpuSnapshot, dict[int, GpuAttribution]]] = {}
        self._gpu_history: dict[tuple[str, int], deque[float | None]] = {}
        self._gpus_at = 0.0
        self._fleet_gpus: tuple[HostGpus, ...] = ()
        #: Bumped whenever ``fleet_gpus`` changes, so a reader redraws only then.
        self.gpus_version = 0
        self._last_id: str | None = None
        self.last_scan_seconds = 0.0
        #: None while the hub answers; else the one-line reason and since when (monotonic) it does not.
        self.status: str | None = None
        self._failing_since: float | None = None
        #: Rows the hub no longer holds, kept until their host's agent has republished: row key -> since (monotonic).
        self._held: dict[str, float] = {}

    # -- identity --------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def location(self) -> str:
        return self.hub.address.shown

    @property
    def read_only(self) -> bool:
        return True

    def entries(self) -> Mapping[str, Entry]:
        return self._entries

    def close(self) -> None:
        """Close the connections to the hub (a later call connects again)."""
        self.hub.close()
        self.actions.hub.close()

    def allowed_actions(self, entry: Entry) -> frozenset[str]:
        """Actions are asked of the record's host agent (never in observer mode, never on a broken row)."""
        if self.observer or not isinstance(entry, ExperimentRecord) or self.target(entry) is None:
            return frozenset()
        return frozenset({RESUME, MARK_STALE, STOP})

    def target(self, entry: Entry) -> tuple[str, str, str] | None:
        """(host, the host's source name, its key) of a row, for an action request."""
        parts = entry.key.split("/", 2)
        return (parts[0], parts[1], parts[2]) if len(parts) == 3 and valid_host_name(parts[0]) else None

    def lease_of(self, host: str) -> HostLease | None:
        """The host's lease as the hub has it now (a read: call off the UI thread)."""
        return next((lease for lease in self.hub.leases() if lease.host == host), None)

    def snapshot_reader(self) -> HubSnapshotReader:
        """A reader of one row in full for the inspector (its own connection: it reads from a worker thread)."""
        from state.sources.hub_reader import HubSnapshotReader

        return HubSnapshotReader(self)

    def hint(self, paths: set[str]) -> Delta:
        return Delta()

    # -- scanning ----------------------------------------------------------------------------------------
    def initial_batches(self) -> Iterator[Delta]:
        with self._scan_lock:
            if self._last_id is None:
                yield from self._scan()
                return
            with self._lock:
                entries = dict(self._entries)
        yield Delta(entries)  # follow() got the picture first: what it read, not read again

    def reconcile(self) -> Delta:
        upserts: dict[str, Entry] = {}
        removed: list[str] = []
        verdicts: dict[str, StaleVerdict] = {}
        devices = None
        for delta in self._scan():
            upserts.update(delta.upserts)
            removed += delta.removed
            verdicts.update(delta.verdicts)
            devices = delta.devices if delta.devices is not None else devices
        return Delta(upserts, tuple(k for k in removed if k not in upserts), verdicts, devices)

    def _scan(self) -> Iterator[Delta]:
        """Every record, in batches; then what went, the leases and the devices. Raises ``HubError``."""
        with self._scan_lock:
            yield from self._scan_locked()

    def _scan_locked(self) -> Iterator[Delta]:
        started = time.perf_counter()
        resume_at = self.hub.last_event_id()
        seen: set[str] = set()
        for batch in self.hub.scan_records():
            with self._lock:
                upserts = self._take(batch)
            seen.update(upserts)
            yield Delta(upserts)
        with self._lock:
            missing = [k for k in self._entries if k not in seen]
            self._last_id = resume_at
        gone = self._gone(missing)
        verdicts = self._refresh_leases(force=True)
        devices = self._refresh_devices()
        self._refresh_gpus(force=True)
        self.last_scan_seconds = time.perf_counter() - started
        self._answered()
        yield Delta(removed=gone, verdicts=verdicts, devices=devices)

    def _gone(self, missing: list[str]) -> tuple[str, ...]:
        """Of the rows a rescan did not find, those to drop: not those of hosts whose agent has not republished yet."""
        hosts = {self._host_of(k) for k in missing} - {None}
        described = HubActions(self.hub).described(hosts)  # type: ignore[arg-type]
        now = time.monotonic()
        with self._lock:
            gone = tuple(k for k in missing if self._host_of(k) in described or now - self._held.get(k, now) > HELD_MAX_S)
            for key in missing:
                if key not in gone:
                    self._held.setdefault(key, now)
            self._drop(gone)
        return gone

    def _republished(self) -> list[str]:
        """Held rows whose host's agent has now republished and that it did not publish again (or held too long)."""
        with self._lock:
            held = {k: self._host_of(k) for k in self._held}
            redis_key_of = {k: r for r, k in self._by_redis_key.items() if k in held}
        described = HubActions(self.hub).described(h for h in held.values() if h)
        settled = [k for k, host in held.items() if host in described]
        found = self.hub.read_records([redis_key_of[k] for k in settled if k in redis_key_of])
        still_there = {r.redis_key for r in found if r is not None}
        now = time.monotonic()
        with self._lock:
            gone = [k for k in settled if redis_key_of.get(k) not in still_there]
            gone += [k for k, since in self._held.items() if k not in settled and now - since > HELD_MAX_S]
            for key in settled:
                self._held.pop(key, None)
            self._drop(gone)
        return gone

    def _host_of(self, key: str) -> str | None:
        entry = self._entries.get(key)
        return entry.host if isinstance(entry, ExperimentRecord) else None

    def _take(self, records: Iterable[HubRecord]) -> dict[str, Entry]:
        upserts = {}
        for record in records:
            key, entry = self._decode(record)
            self._held.pop(key, None)
            old_key = self._by_redis_key.get(record.redis_key)
            if old_key is not None and old_key != key:
                self._drop((old_key,))
            self._entries[key] = entry
            self._said[key] = decode_verdict(record.verdict)
            self._by_redis_key[record.redis_key] = key
            upserts[key] = entry
        return upserts

    def _drop(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._entries.pop(key, None)
            self._said.pop(key, None)
            self._held.pop(key, None)
        dropped = set(keys)
        for redis_key in [r for r, k in self._by_redis_key.items() if k in dropped]:
            del self._by_redis_key[redis_key]

    def _decode(self, record: HubRecord) -> tuple[str, Entry]:
        parts = [v.decode("utf-8", errors="replace") if v is not None else "" for v in (record.host, record.source, record.key)]
        host, source, key = parts
        if valid_host_name(host) and _SAFE_PART.match(source) and unsafe_id_reason(key) is None and "/" not in key:
            row_key = f"{host}/{source}/{key}"
            return row_key, decode_entry(record.summary, key=row_key, host=host)
        row_key = "invalid/" + re.sub(r"[^A-Za-z0-9._-]", "_", record.redis_key)[-120:]
        return row_key, BrokenRecord(row_key, Path(row_key), "hub record with an invalid host, source or key")

    # -- following -----------------------------------------------------------------------------------------
    def follow(self, stop: threading.Event) -> Iterator[Delta]:
        """Deltas from the change stream until ``stop`` is set; a gap or a lost connection rescans."""
        retry = RETRY_FIRST_S
        rescan = self._last_id is None
        while not stop.is_set():
            try:
                if rescan:
                    delta = self._first_picture() if self._last_id is None else self.reconcile()
                    rescan = False
                else:
                    delta, rescan = self._next()
                retry = RETRY_FIRST_S
                if delta:
                    yield delta
            except HubError as exc:
                self._failed(str(exc))
                self.hub.close()
                rescan = True
                stop.wait(retry)
                retry = min(RETRY_MAX_S, retry * 2)

    def _first_picture(self) -> Delta:
        """The first scan, unless ``initial_batches`` (the App's, on another thread) made it while this waited."""
        with self._scan_lock:
            return self.reconcile() if self._last_id is None else Delta()

    def _next(self) -> tuple[Delta, bool]:
        """One blocking read: the records it names, and lease and device changes. (delta, rescan needed)."""
        after = self._last_id or "0-0"
        events = self.hub.read_events(after, block_ms=self._block_ms)
        self._answered()
        upserts: dict[str, Entry] = {}
        removed: list[str] = []
        if events:
            oldest = self.hub.first_event_id()
            if oldest is not None and event_id_before(after, oldest):
                return Delta(), True  # trimmed (or a new hub) under us: what is missing is unknown
            names = list(dict.fromkeys(e.redis_key for e in events if self.hub.is_record_key(e.redis_key)))
            records = self.hub.read_records(names)
            with self._lock:
                for name, record in zip(names, records):
                    if record is None:
                        key = self._by_redis_key.get(name)
                        if key is not None:
                            self._drop((key,))
                            removed.append(key)
                    else:
                        upserts.update(self._take([record]))
                self._last_id = events[-1].id
        if self._held:
            removed += self._republished()
        verdicts = self._refresh_leases()
        devices = self._refresh_devices() if verdicts or events else None
        self._refresh_gpus()
        return Delta(upserts, tuple(k for k in removed if k not in upserts), verdicts, devices), False

    # -- hosts, leases and verdicts -----------------------------------------------------------------------------
    def _refresh_leases(self, *, force: bool = False) -> dict[str, StaleVerdict]:
        """Read the leases when due; the verdicts of running experiments on hosts whose lease state moved."""
        if not force and time.monotonic() - self._leases_at < LEASE_REFRESH_S:
            return {}
        leases = {lease.host: lease for lease in self.hub.leases()}
        with self._lock:
            before = self._leases
            self._leases, self._leases_at = leases, time.monotonic()
            moved = {
                h for h in leases.keys() | before.keys()
                if (h in leases) != (h in before) or leases[h].alive != before[h].alive or not leases[h].alive
            }
            return {
                k: self._verdict(e) for k, e in self._entries.items()
                if isinstance(e, ExperimentRecord) and e.status == "running" and e.host in moved
            }

    def _verdict(self, entry: ExperimentRecord) -> StaleVerdict:
        host = entry.host or "?"
        said = self._said.get(entry.key)
        lease = self._leases.get(host)
        if lease is None or not lease.alive:
            return silent_verdict(host, lease, said)
        return said or StaleVerdict(Liveness.UNKNOWN, f"host {host} has published no verdict yet")

    def judge(self, entries: Iterable[Entry], probe: LivenessProbe, now: datetime) -> dict[str, StaleVerdict]:
        """The hosts' verdicts, made unknown where a host is silent (nothing is probed here)."""
        running = [e for e in entries if isinstance(e, ExperimentRecord) and e.status == "running"]
        if not running:
            return {}
        try:
            self._refresh_leases()
        except HubError as exc:
            self._failed(str(exc))
        with self._lock:
            return {e.key: self._verdict(e) for e in running}

    def _refresh_devices(self) -> tuple[DeviceSnapshot, ...] | None:
        """Every live host's device snapshots, when any changed (None: unchanged)."""
        with self._lock:
            hosts = sorted(self._leases)
        raw = self.hub.devices(hosts)
        if raw == self._devices_raw:
            return None
        self._devices_raw = raw
        snapshots: list[DeviceSnapshot] = []
        for host, text in sorted(raw.items()):
            if len(text) > MAX_DEVICES_BYTES:
                continue
            try:
                items = json.loads(text)
                snapshots += [DeviceSnapshot.model_validate(item).model_copy(update={"host": host})
                              for item in items] if isinstance(items, list) else []
            except (ValueError, TypeError, RecursionError):
                continue
        return tuple(snapshots)

    # -- GPUs ------------------------------------------------------------------------------------------------------
    def fleet_gpus(self) -> tuple[HostGpus, ...]:
        """Every host that ever held a lease, by name: its GPUs as last published, or for how long it is silent."""
        with self._lock:
            return self._fleet_gpus

    def _refresh_gpus(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._gpus_at < GPU_REFRESH_S:
            return
        with self._lock:
            leases = dict(self._leases)
        raw = self.hub.gpus(sorted(leases))
        with self._lock:
            self._gpus_at = time.monotonic()
            for host, text in raw.items():
                if self._gpus_raw.get(host) != text:
                    snapshot, attributions = decode_gpus(text)
                    self._gpus_decoded[host] = (snapshot, attributions)
                    for gpu in snapshot.gpus:
                        self._gpu_history.setdefault((host, gpu.index), deque(maxlen=GPU_HISTORY)).append(gpu.utilization_gpu)
            for host in set(self._gpus_decoded) - raw.keys():
                del self._gpus_decoded[host]
            silent = any(not lease.alive for lease in leases.values())  # their silence grows: redraw
            if raw == self._gpus_raw and not silent and len(leases) == len(self._fleet_gpus):
                return
            self._gpus_raw = raw
            self._fleet_gpus = tuple(self._host_gpus(host, lease) for host, lease in sorted(leases.items()))
            self.gpus_version += 1

    def _host_gpus(self, host: str, lease: HostLease) -> HostGpus:
        snapshot, attributions = self._gpus_decoded.get(host, (None, {}))
        history = {g.index: tuple(self._gpu_history.get((host, g.index), ())) for g in snapshot.gpus} if snapshot else {}
        return HostGpus(host, snapshot, attributions, history, None if lease.alive else lease.silent_s)

    # -- health --------------------------------------------------------------------------------------------------
    def _failed(self, reason: str) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        self.status = f"{reason} (last good picture {duration(now - self._failing_since)} old)"

    def _answered(self) -> None:
        self._failing_since = None
        with self._lock:
            held = dict(self._held)
        if not held:
            self.status = None
            return
        hosts = sorted({h for h in map(self._host_of, held) if h})
        age = duration(time.monotonic() - min(held.values()))
        self.status = (
            f"hub {self.location} came back without {len(held)} records of {', '.join(hosts[:4])}{' …' if len(hosts) > 4 else ''} "
            f"(restarted empty?): last good picture kept, {age} old, until their agents republish"
        )


def open_hub(spec: str, read_only: bool, name: str | None) -> HubSource | None:
    if not is_hub_url(spec):
        return None
    try:
        return HubSource(spec, name=name, observer=read_only)
    except HubError as exc:
        raise SourceError(str(exc)) from None


__all__ = ["HubSource", "open_hub", "silent_verdict"]
