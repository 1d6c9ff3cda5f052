"""The host agent: this host's state directories, published into a Redis hub.

The files stay the truth. The agent watches its directories with the same
watcher and ``DirectorySource`` code as the dashboard, judges the running
experiments here (only this host can probe its PIDs) and publishes every record
with its verdict through the hub's compare-and-set, and its GPUs (the dashboard's
own sampler and attribution) as a snapshot that expires with the lease. A lease
with a server-side TTL says the agent is alive. Actions asked from a dashboard
arrive on the host's action stream and are done here (``runtime.agent_actions``). When the hub goes away, the agent keeps reading its
files and retries with backoff; when the hub is back, or comes back empty (its
lease was missing at renewal), it republishes everything it holds and deletes what
the hub has of this host that the files no longer hold. Nothing is lost, since
nothing lives only in the hub.

One agent serves a host name: the lease names this agent's instance and the hub
renews it only for that instance, so a second agent started for the same host
stops at once (``LeaseHeld``, ``conflict``) instead of sharing the host's work.
The lease also records this agent's process (``runtime.lease_holder``): an agent
restarted after its predecessor died holding the lease (SIGKILL, a crash) takes the
lease over at once when that process is proven gone from this machine, instead of
waiting for the lease to lapse.

All hub and store work runs in threads, one call at a time (a lock): the event
loop only waits on watch events and timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from runtime.agent_actions import ActionServer
from runtime.gpu import GpuSampler
from runtime.gpu.source import GpuSource
from runtime.lease_holder import judge_holder, parse_holder, this_holder
from runtime.liveness import LocalProbe
from runtime.procs import ProcessSampler
from runtime.watcher import watch_directory
from state.hub.codec import encode_entry, encode_gpus, encode_verdict
from state.hub.actions import HubActions
from state.hub.connection import HubError
from state.hub.schema import Hub, LeaseHeld, record_version
from state.record import Entry, ExperimentRecord
from state.sources import Delta, DirectorySource
from state.telemetry import GpuSnapshot, attribute_gpu_processes
from state.verdict import LivenessProbe, StaleVerdict

log = logging.getLogger("expwatch.agent")

#: The lease's TTL, and how often it is renewed (a few renewals may fail before it lapses).
LEASE_S = 15.0
RENEW_S = 3.0
#: Full rescans of the directories (the safety net for lost watch events).
RECONCILE_S = 30.0
#: Reconnection attempts wait this long, doubling, up to the most.
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0
#: A verdict whose liveness is unchanged but whose wording moved (an age in it) is republished at most this often.
REWORDED_VERDICT_S = 30.0
#: Documents larger than this are published without their full text (the summary always goes).
DOC_LIMIT_BYTES = 1024 * 1024


def _local_now() -> datetime:
    return datetime.now().astimezone()


def read_document(entry: Entry) -> bytes:
    """The state file's text for the hub's ``doc`` field (empty when broken, unreadable or too large)."""
    if not isinstance(entry, ExperimentRecord):
        return b""
    try:
        with open(entry.path, "rb") as handle:
            data = handle.read(DOC_LIMIT_BYTES + 1)
    except OSError:
        return b""
    return data if len(data) <= DOC_LIMIT_BYTES else b""


class HubAgent:
    """Publishes ``sources`` as host ``host`` into ``hub`` until stopped."""

    def __init__(
        self,
        hub: Hub,
        sources: Iterable[DirectorySource],
        host: str,
        *,
        probe: LivenessProbe | None = None,
        lease_s: float = LEASE_S,
        renew_s: float = RENEW_S,
        reconcile_s: float = RECONCILE_S,
        on_status: Callable[[str], None] = lambda text: None,
        clock: Callable[[], datetime] = _local_now,
        gpu_source: GpuSource | None = None,
        gpu_interval: float = 1.0,
        accept_actions: bool = True,
        resume_template: str | None = None,
    ) -> None:
        self.hub = hub
        self.sources = list(sources)
        self.host = host
        self.probe = probe or LocalProbe()
        self.lease_s = lease_s
        self.renew_s = renew_s
        self.reconcile_s = reconcile_s
        self.on_status = on_status
        self.clock = clock
        self.connected = False
        self.last_error: str | None = None
        #: Names this agent in its lease: another instance for the same host is refused while the lease lives.
        self.instance = secrets.token_hex(8)
        #: This process as the lease records it (a successor judges it by these facts).
        self.holder = this_holder()
        #: Why this agent stopped itself: another live instance holds the host's lease (None: it does not).
        self.conflict: str | None = None
        #: Why this agent stopped itself: one of its parts ended on an error (None: none did).
        self.failure: str | None = None
        #: Set once this agent holds the lease: only then does it take actions for the host.
        self._leased = threading.Event()
        #: Full republications done (the first one included).
        self.resyncs = 0
        self._lock = threading.Lock()
        #: Redis key -> (version, liveness, reason, monotonic time) of the verdict last published.
        self._verdicts: dict[str, tuple[str, str, str, float]] = {}
        self._devices: dict[str, list[dict]] = {}
        self._reconciled_at = time.monotonic()
        self._gpu_sampler = GpuSampler(gpu_source, interval=gpu_interval, on_snapshot=self._gpus_sampled) if gpu_source else None
        self._procs = ProcessSampler()
        self.action_server = ActionServer(
            HubActions(Hub(hub.address)), host, self.sources, probe=self.probe, clock=clock,
            resume_template=resume_template, accept=accept_actions, on_status=on_status,
        )

    # -- running -----------------------------------------------------------------------------------
    def claim(self) -> None:
        """Take the host's lease before anything else, when the hub answers (it is retried in ``run`` when not).

        Raises ``LeaseHeld`` when another agent instance, not proven gone, holds this host name.
        """
        with contextlib.suppress(HubError):
            self._hold_lease()

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.to_thread(self._locked, self._initial_scan)
        tasks = [asyncio.create_task(self._watch(source, stop), name=f"watch of {source.location}") for source in self.sources]
        tasks.append(asyncio.create_task(self._maintain(stop), name="lease and reconcile"))
        if self._gpu_sampler is not None:
            self._gpu_sampler.start()
        serving = threading.Event()
        server = asyncio.create_task(asyncio.to_thread(self.action_server.serve, serving, self._leased), name="action server")
        for task in (*tasks, server):
            task.add_done_callback(lambda done: self._ended(done, stop))
        try:
            await stop.wait()
        finally:
            serving.set()
            await server
            if self._gpu_sampler is not None:
                await asyncio.to_thread(self._gpu_sampler.stop, 1.0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(self._locked, self._release)

    def _ended(self, task: asyncio.Task[Any], stop: asyncio.Event) -> None:
        """A part of the agent that ends on an error stops the whole agent, saying why.

        An agent that kept renewing its lease with a dead watch would tell the fleet its host is
        fine while the host's records go stale; stopped, its lease lapses and the host shows as
        silent, and the exit status lets a supervisor restart it.
        """
        if task.cancelled() or stop.is_set() or task.exception() is None:
            return
        exc = task.exception()
        self.failure = f"{task.get_name()} failed: {type(exc).__name__}: {exc}"
        log.error("agent for %s: %s", self.host, self.failure, exc_info=exc)
        if self.on_status is not None:
            self.on_status(f"{self.failure}; stopping")
        stop.set()

    def _locked(self, fn: Callable[..., object], *args: object) -> object:
        with self._lock:
            return fn(*args)

    async def _maintain(self, stop: asyncio.Event) -> None:
        backoff = BACKOFF_FIRST_S
        while not stop.is_set():
            ok = await asyncio.to_thread(self._locked, self._tick)
            if self.conflict is not None:
                stop.set()
                return
            delay = self.renew_s if ok else backoff
            backoff = BACKOFF_FIRST_S if ok else min(BACKOFF_MAX_S, backoff * 2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _watch(self, source: DirectorySource, stop: asyncio.Event) -> None:
        """Watch events as hints, like the dashboard; a watch that ends (a folder to watch appeared, the
        directory replaced) is renewed at once. What was written before a watch began sends it no event:
        its first batch (events, or the idle one within a second) rescans instead, so nothing written
        between the last scan and the watch waits for the next reconcile."""
        fresh: set[Path] = set()
        while not stop.is_set():
            broken = False
            try:
                if source.root.is_dir():
                    rescan = True
                    async with contextlib.aclosing(watch_directory(source.root, stop, fresh)) as batches:
                        async for paths in batches:
                            if rescan:
                                rescan = False
                                await asyncio.to_thread(self._locked, self._apply_reconcile, source)
                            elif paths or source.has_deferred:
                                await asyncio.to_thread(self._locked, self._apply_hint, source, paths)
                else:
                    broken = True
            except (OSError, RuntimeError):
                broken = True
            if stop.is_set():
                return
            await asyncio.to_thread(self._locked, self._apply_reconcile, source)
            if broken:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    # -- the work (threads, under the lock) ----------------------------------------------------------
    def _initial_scan(self) -> None:
        for source in self.sources:
            for delta in source.initial_batches():
                self._note_devices(source, delta)

    def _apply_hint(self, source: DirectorySource, paths: set[str]) -> None:
        self._apply(source, source.hint(paths))

    def _apply_reconcile(self, source: DirectorySource) -> None:
        self._apply(source, source.reconcile())

    def _apply(self, source: DirectorySource, delta: Delta) -> None:
        """Publish what changed (while the hub is away, the store keeps it for the resync)."""
        devices = self._note_devices(source, delta)
        if not self.connected or not delta:
            return
        try:
            verdicts = source.judge(delta.upserts.values(), self.probe, self.clock())
            for entry in delta.upserts.values():
                self._publish(source, entry, verdicts.get(entry.key))
            for key in delta.removed:
                self.hub.remove(self.hub.record_key(self.host, source.name, key))
                self._verdicts.pop(self.hub.record_key(self.host, source.name, key), None)
            if devices:
                self._publish_devices()
        except HubError as exc:
            self._lost(exc)

    def _note_devices(self, source: DirectorySource, delta: Delta) -> bool:
        if delta.devices is None:
            return False
        self._devices[source.name] = [json.loads(s.model_dump_json(by_alias=True)) for s in delta.devices]
        return True

    def _publish(self, source: DirectorySource, entry: Entry, verdict: StaleVerdict | None) -> None:
        version = record_version(entry.version.mtime_ns if entry.version is not None else None)
        self.hub.publish(
            self.host, source.name, entry.key,
            version=version, summary=encode_entry(entry), verdict=encode_verdict(verdict), doc=read_document(entry),
        )
        self._remember_verdict(self.hub.record_key(self.host, source.name, entry.key), version, verdict)

    def _remember_verdict(self, redis_key: str, version: str, verdict: StaleVerdict | None) -> None:
        if verdict is None:
            self._verdicts.pop(redis_key, None)
        else:
            self._verdicts[redis_key] = (version, verdict.liveness.value, verdict.reason, time.monotonic())

    def _publish_devices(self) -> None:
        snapshots = [s for name in sorted(self._devices) for s in self._devices[name]]
        self.hub.put_devices(self.host, json.dumps(snapshots, separators=(",", ":")), self.lease_s)

    def _gpus_sampled(self, snapshot: GpuSnapshot) -> None:
        """On the sampler's thread: attribute the GPU processes to this host's records and publish."""
        with self._lock:
            if not self.connected:
                return
            records = [e for s in self.sources for e in s.entries().values() if isinstance(e, ExperimentRecord)]
            try:
                self._publish_gpus(snapshot, records)
            except HubError as exc:
                self._lost(exc)

    def _publish_gpus(self, snapshot: GpuSnapshot, records: list[ExperimentRecord]) -> None:
        pids = [p.pid for g in snapshot.gpus for p in g.processes]
        here = self.probe.host_facts()
        attributions = attribute_gpu_processes(
            snapshot, records, start_times=self._procs.start_times(pids) if pids else {}, host=here.host, boot_id=here.boot_id
        )
        self.hub.put_gpus(self.host, encode_gpus(snapshot, attributions), self.lease_s)

    def _tick(self) -> bool:
        """Renew the lease (republishing everything when the hub lost it), re-judge, rescan when due."""
        try:
            if not self.connected:
                self.hub.ping()
                self._resync()
            elif not self._hold_lease():
                self.on_status(f"hub {self.hub.address.shown} did not hold this agent's lease (restarted, expired or taken over): republishing")
                self._resync()
            elif self._devices:
                self._publish_devices()
            self._rejudge()
            if time.monotonic() - self._reconciled_at >= self.reconcile_s:
                self._reconciled_at = time.monotonic()
                for source in self.sources:
                    self._apply(source, source.reconcile())
            return self.connected
        except LeaseHeld as exc:
            self.conflict = str(exc)
            self.connected = False
            self._leased.clear()
            return False
        except HubError as exc:
            self._lost(exc)
            return False

    def _resync(self) -> None:
        """Everything this agent holds, published again; what the hub holds beyond it, removed."""
        self._hold_lease()
        ours: set[str] = set()
        self._verdicts.clear()
        now = self.clock()
        for source in self.sources:
            entries = list(source.entries().values())
            verdicts = source.judge(entries, self.probe, now)
            for entry in entries:
                ours.add(self.hub.record_key(self.host, source.name, entry.key))
                self._publish(source, entry, verdicts.get(entry.key))
        for stale in self.hub.record_keys(self.host) - ours:
            self.hub.remove(stale)
        HubActions(self.hub).describe_self(self.host, [str(s.location) for s in self.sources])
        if self._devices:
            self._publish_devices()
        self.resyncs += 1
        if not self.connected or self.last_error:
            self.on_status(f"publishing to {self.hub.address.shown} as {self.host}: {len(ours)} records")
        self.connected = True
        self.last_error = None
        self._leased.set()

    def _rejudge(self) -> None:
        """Verdicts of running experiments judged again; published when the liveness (or, rarely, the wording) changed."""
        now, mono = self.clock(), time.monotonic()
        for source in self.sources:
            running = [e for e in source.entries().values() if isinstance(e, ExperimentRecord) and e.status == "running"]
            for key, verdict in source.judge(running, self.probe, now).items():
                redis_key = self.hub.record_key(self.host, source.name, key)
                entry = source.entries().get(key)
                if entry is None:
                    continue
                version = record_version(entry.version.mtime_ns if entry.version is not None else None)
                last = self._verdicts.get(redis_key)
                if last is not None and last[0] == version and last[1] == verdict.liveness.value:
                    if last[2] == verdict.reason or mono - last[3] < REWORDED_VERDICT_S:
                        continue
                self.hub.set_verdict(self.host, source.name, key, version=version, verdict=encode_verdict(verdict))
                self._remember_verdict(redis_key, version, verdict)

    def _lost(self, exc: HubError) -> None:
        text = str(exc)
        if self.connected or text != self.last_error:
            self.on_status(f"{text}; retrying (the files stay the truth)")
        self.connected = False
        self.last_error = text
        self._leased.clear()  # no longer sure to hold the lease: no actions until it is renewed
        self.hub.close()

    def _hold_lease(self) -> bool:
        """Take or renew the host's lease; False when this agent did not hold it (none, or a dead agent's).

        Another instance's lease is taken over only when its holder is proven gone from this
        machine, and only if the lease still holds exactly what was judged (of two agents
        restarted at once, one wins); else ``LeaseHeld``, saying why it was not taken.
        """
        info = self._lease_info()
        try:
            return self.hub.renew_lease(self.host, info, self.lease_s)
        except LeaseHeld as exc:
            held = exc
        holder = parse_holder(held.holder)
        verdict = judge_holder(holder, me=self.holder, probe=self.probe.probe)
        if holder is None or held.holder is None or not verdict.is_dead:
            raise LeaseHeld(self.host, held.holder, held.ttl_ms, why=verdict.reason, alive=verdict.is_alive) from None
        self.hub.take_over_lease(self.host, held.holder, info, self.lease_s)
        self.on_status(f"took over the lease of pid {holder.pid} on this host: that process is gone ({verdict.reason})")
        return False

    def _lease_info(self) -> str:
        """What the lease says of its holder: the instance (compared by the hub), and where and which process it is."""
        info = {"instance": self.instance, **self.holder.as_json(), "sources": [s.name for s in self.sources]}
        return json.dumps(info, separators=(",", ":"))

    def _release(self) -> None:
        """A clean stop drops the lease at once (its own only): this host's running experiments become unknown, not dead."""
        if self.connected:
            with contextlib.suppress(HubError):
                self.hub.release_lease(self.host, self._lease_info())
        self.hub.close()


__all__ = ["HubAgent", "LEASE_S", "RENEW_S"]
