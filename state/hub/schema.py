"""The hub's keys and every read and write of them.

All keys of a fleet live under one prefix ``P`` (``?prefix=`` in the URL):

- ``P:exp:<host>:<source>:<key>``: a hash per experiment, fields ``host source key
  version summary verdict doc``, written only by ``PUBLISH`` (Lua): a compare-and-set on
  ``version`` (the file's mtime in ns, zero-padded so Lua compares strings), so an old
  agent or a late retry never overwrites a newer version; an unchanged record is not
  rewritten and sends no event.
- ``P:events``: the change stream (``XADD MAXLEN ~``), one entry per write or removal,
  read with ``XREAD BLOCK`` from the reader's last id; never pub/sub, which loses
  whatever is sent while a reader is away.
- ``P:host:<host>``: the agent's lease, a key with a server-side TTL (Redis's clock, not
  the hosts'), whose value is a JSON object naming the agent ``instance`` that holds it
  (taken and renewed only by that instance, so one host name has one agent) and, for
  people and for a successor, its process: ``pid``, ``hostname``, ``boot_id``, ``pid_ns``
  (its PID namespace), ``start_ticks``/``start_time`` (when the process started), ``uid``
  and ``sources``. An agent restarted after its predecessor died without releasing the
  lease may take it over (``take_over_lease``: a compare-and-set on the exact value it judged,
  so of two restarted agents one wins); whether the holder is gone is judged on the host
  (``runtime.lease_holder``), never here. ``P:hosts``: host -> the time (Redis's, ms) of
  its last renewal, so a reader can say for how long a host has been silent.
- ``P:devices:<host>``, ``P:gpus:<host>``: the host's latest lab-device and GPU
  snapshots, each with the lease's TTL (a silent host's telemetry vanishes with it).
- ``P:kv:<host>:<experiment id>``: an experiment's shared run state (``run.shared``,
  design §12) when its runner was given ``--hub``: one field per key, each value JSON
  text, plus the field ``""`` (no key can be empty) holding the map's encoded size, kept
  by the same Lua scripts that write (``state.hub.shared``). The host (the runner's
  ``--host-name``, by default the agent's default: the hostname) keeps two hosts that
  reuse an experiment id apart; the id, not the state file's key, lets ``expwatch kv``
  find the map with no agent running. No TTL: it outlives the run, like the file.

Every Redis error leaves this module as a ``HubError`` with one line that says what to do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from state.hub.connection import HubAddress, HubError, describe_error
from state.text import printable

T = TypeVar("T")

#: Change-stream entries kept (approximately): a reader further behind than this rescans.
EVENTS_MAXLEN = 10_000
#: Records read per round trip during a full scan.
SCAN_BATCH = 500
#: A lease value larger than this is not read (its holder is then named as unknown).
MAX_LEASE_BYTES = 16 * 1024

_PUBLISH = """
local cur = redis.call('HGET', KEYS[1], 'version')
if cur and cur > ARGV[1] then return 0 end
if cur == ARGV[1] then
  local old = redis.call('HMGET', KEYS[1], 'summary', 'verdict', 'doc')
  if old[1] == ARGV[2] and old[2] == ARGV[3] and old[3] == ARGV[4] then return 0 end
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'summary', ARGV[2], 'verdict', ARGV[3], 'doc', ARGV[4],
           'host', ARGV[5], 'source', ARGV[6], 'key', ARGV[7])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', 'op', 'put', 'k', KEYS[1])
return 1
"""

_SET_VERDICT = """
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'verdict') == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'verdict', ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'op', 'put', 'k', KEYS[1])
return 1
"""

_REMOVE = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'op', 'del', 'k', KEYS[1])
return 1
"""

_LEASE_INSTANCE = """
local function instance_of(text)
  local ok, doc = pcall(cjson.decode, text)
  if ok and type(doc) == 'table' and type(doc['instance']) == 'string' then return doc['instance'] end
  return ''
end
"""

_RENEW_LEASE = _LEASE_INSTANCE + """
local t = redis.call('TIME')
local cur = redis.call('GET', KEYS[1])
if cur and instance_of(cur) ~= instance_of(ARGV[2]) then return {-1, cur, redis.call('PTTL', KEYS[1])} end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], t[1] * 1000 + math.floor(t[2] / 1000))
if cur then return {1} end
return {0}
"""

_TAKE_OVER_LEASE = """
local t = redis.call('TIME')
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[2] then return {-1, cur, redis.call('PTTL', KEYS[1])} end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], t[1] * 1000 + math.floor(t[2] / 1000))
return {1}
"""

_RELEASE_LEASE = _LEASE_INSTANCE + """
local cur = redis.call('GET', KEYS[1])
if cur and instance_of(cur) == instance_of(ARGV[1]) then return redis.call('DEL', KEYS[1]) end
return 0
"""

_LEASES = """
local t = redis.call('TIME')
local out = {t[1] * 1000 + math.floor(t[2] / 1000)}
local hosts = redis.call('HGETALL', KEYS[1])
for i = 1, #hosts, 2 do
  out[#out + 1] = hosts[i]
  out[#out + 1] = hosts[i + 1]
  out[#out + 1] = redis.call('EXISTS', ARGV[1] .. hosts[i])
end
return out
"""

_READ_DOCUMENT = """
local version = redis.call('HGET', KEYS[1], 'version')
if not version then return {} end
local size = redis.call('HSTRLEN', KEYS[1], 'doc')
if size > tonumber(ARGV[1]) then return {version, size} end
return {version, size, redis.call('HGET', KEYS[1], 'doc')}
"""


def record_version(mtime_ns: int | None) -> str:
    """A file version as the hub compares it (strings of one width compare like the numbers)."""
    return f"{max(0, mtime_ns or 0):020d}"


@dataclass(frozen=True, slots=True)
class HubRecord:
    """One experiment hash as read from the hub (bytes: decoding is the codec's job)."""

    redis_key: str
    host: bytes | None
    source: bytes | None
    key: bytes | None
    summary: bytes | None
    verdict: bytes | None


@dataclass(frozen=True, slots=True)
class HubEvent:
    id: str
    op: str
    redis_key: str


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """What a lease value says of the agent process holding it (None: not recorded, or not usable)."""

    pid: int | None = None
    hostname: str | None = None
    boot_id: str | None = None
    pid_ns: str | None = None
    start_ticks: int | None = None
    start_time: float | None = None
    uid: int | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _typed(doc: dict[str, Any], name: str, kind: type) -> Any:
    value = doc.get(name)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def parse_holder(raw: bytes | None) -> LeaseHolder | None:
    """The holder a lease value names; None when the value is not a JSON object. A wrong-typed field reads as absent."""
    if raw is None or len(raw) > MAX_LEASE_BYTES:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    return LeaseHolder(
        pid=_typed(doc, "pid", int), hostname=_typed(doc, "hostname", str), boot_id=_typed(doc, "boot_id", str),
        pid_ns=_typed(doc, "pid_ns", str), start_ticks=_typed(doc, "start_ticks", int), start_time=_typed(doc, "start_time", float),
        uid=_typed(doc, "uid", int),
    )


class LeaseHeld(Exception):
    """Another agent instance holds the host's live lease: this one must not serve the host.

    ``holder`` is the lease's value as read (what a takeover must find unchanged); ``why``
    says why it was not taken over, and ``alive`` whether its holder is known to live (else
    it only may).
    """

    def __init__(self, host: str, holder: bytes | None, ttl_ms: int, *, why: str | None = None, alive: bool = True) -> None:
        self.host = host
        self.holder = holder
        self.ttl_ms = ttl_ms
        named = parse_holder(holder) or LeaseHolder()
        who = f"pid {named.pid if named.pid is not None else '?'} on {printable(named.hostname) if named.hostname is not None else '?'}"
        head = f"host {host} already has a live agent ({who})" if alive else f"host {host}'s lease is held by {who}, not taken over"
        lapses = "; its lease lapses in {:.1f} s if it is gone" if alive else "; it lapses in {:.1f} s unless its holder renews it"
        lapses = lapses.format(max(0, ttl_ms) / 1000) if ttl_ms > 0 else ""
        super().__init__(f"{head}{f': {printable(why)}' if why else ''}{lapses}")


@dataclass(frozen=True, slots=True)
class HostLease:
    host: str
    alive: bool
    silent_s: float
    """Seconds since the host last renewed its lease (by the hub's clock)."""


class Hub:
    """One fleet on one Redis server: the keys under its prefix, and the operations on them."""

    def __init__(self, address: HubAddress | str, *, timeout: float | None = None) -> None:
        self.address = address if isinstance(address, HubAddress) else HubAddress.parse(address)
        self.prefix = self.address.prefix
        self._timeout = timeout
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self.events_key = f"{self.prefix}:events"
        self.hosts_key = f"{self.prefix}:hosts"

    # -- keys ---------------------------------------------------------------------------------
    def record_key(self, host: str, source: str, key: str) -> str:
        return f"{self.prefix}:exp:{host}:{source}:{key}"

    def lease_key(self, host: str) -> str:
        return f"{self.prefix}:host:{host}"

    def devices_key(self, host: str) -> str:
        return f"{self.prefix}:devices:{host}"

    def gpus_key(self, host: str) -> str:
        return f"{self.prefix}:gpus:{host}"

    def shared_key(self, host: str, experiment_id: str) -> str:
        return f"{self.prefix}:kv:{host}:{experiment_id}"

    def is_record_key(self, name: str) -> bool:
        return name.startswith(f"{self.prefix}:exp:")

    # -- the connection -------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.address.client() if self._timeout is None else self.address.client(timeout=self._timeout)
        return self._client

    def call(self, operation: Callable[[Any], T]) -> T:
        """Run ``operation(client)``; any Redis error becomes a one-line ``HubError``."""
        import redis

        try:
            return operation(self.client)
        except redis.RedisError as exc:
            raise HubError(describe_error(exc, self.address.shown)) from exc
        except OSError as exc:
            raise HubError(f"hub {self.address.shown}: {type(exc).__name__}: {exc}") from exc

    def script(self, name: str, text: str) -> Any:
        """The Lua script ``text``, registered once per client (``EVALSHA``, loaded again after a restart)."""
        if name not in self._scripts:
            self._scripts[name] = self.client.register_script(text)
        return self._scripts[name]

    def ping(self) -> None:
        if not self.call(lambda c: c.ping()):
            raise HubError(f"hub {self.address.shown}: no PONG (is it a Redis server?)")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            self._scripts.clear()

    # -- writes (agents) -------------------------------------------------------------------------
    def publish(self, host: str, source: str, key: str, *, version: str, summary: str, verdict: str, doc: bytes) -> bool:
        """Write one record if ``version`` is not older than the hub's; True when it changed."""
        script = self.script("publish", _PUBLISH)
        keys = [self.record_key(host, source, key), self.events_key]
        return bool(self.call(lambda c: script(keys=keys, args=[version, summary, verdict, doc, host, source, key, EVENTS_MAXLEN])))

    def set_verdict(self, host: str, source: str, key: str, *, version: str, verdict: str) -> bool:
        """A new verdict for the record at ``version`` (refused once the record moved on)."""
        script = self.script("set_verdict", _SET_VERDICT)
        keys = [self.record_key(host, source, key), self.events_key]
        return bool(self.call(lambda c: script(keys=keys, args=[version, verdict, EVENTS_MAXLEN])))

    def remove(self, redis_key: str) -> bool:
        script = self.script("remove", _REMOVE)
        return bool(self.call(lambda c: script(keys=[redis_key, self.events_key], args=[EVENTS_MAXLEN])))

    def renew_lease(self, host: str, info: str, ttl_s: float) -> bool:
        """Take or renew ``host``'s lease; False when there was none (expired, or the hub lost everything).

        ``info`` is a JSON object whose ``instance`` names the agent holding it: a live
        lease of another instance is never overwritten (``LeaseHeld``), so two agents
        started with one host name cannot both serve it.
        """
        script = self.script("renew", _RENEW_LEASE)
        keys = [self.lease_key(host), self.hosts_key]
        found = self.call(lambda c: script(keys=keys, args=[host, info, int(ttl_s * 1000)]))
        if int(found[0]) < 0:
            raise LeaseHeld(host, found[1], int(found[2]))
        return bool(int(found[0]))

    def take_over_lease(self, host: str, held: bytes, info: str, ttl_s: float) -> None:
        """Replace ``host``'s lease by ``info`` only if its value is still exactly ``held`` (or it lapsed since).

        The caller has judged ``held``'s holder gone; any other value (another agent that took
        it over first, or the holder's own renewal) raises ``LeaseHeld`` naming it.
        """
        script = self.script("take_over", _TAKE_OVER_LEASE)
        keys = [self.lease_key(host), self.hosts_key]
        found = self.call(lambda c: script(keys=keys, args=[host, held, info, int(ttl_s * 1000)]))
        if int(found[0]) < 0:
            raise LeaseHeld(host, found[1], int(found[2]))

    def release_lease(self, host: str, info: str) -> bool:
        """Drop ``host``'s lease if the instance in ``info`` still holds it (never another agent's)."""
        script = self.script("release", _RELEASE_LEASE)
        return bool(self.call(lambda c: script(keys=[self.lease_key(host)], args=[info])))

    def put_devices(self, host: str, text: str, ttl_s: float) -> None:
        self.call(lambda c: c.set(self.devices_key(host), text, px=int(ttl_s * 1000)))

    def put_gpus(self, host: str, text: str, ttl_s: float) -> None:
        self.call(lambda c: c.set(self.gpus_key(host), text, px=int(ttl_s * 1000)))

    def record_keys(self, host: str | None = None) -> set[str]:
        """The hub's record keys (of one host, or all)."""
        pattern = f"{self.prefix}:exp:{host}:*" if host else f"{self.prefix}:exp:*"
        return self.call(lambda c: {k.decode() for k in c.scan_iter(match=pattern, count=1000)})

    # -- reads (dashboards) ------------------------------------------------------------------------
    def last_event_id(self) -> str:
        """The newest id in the change stream ("0-0" when there is none): where a reader resumes."""
        found = self.call(lambda c: c.xrevrange(self.events_key, count=1))
        return found[0][0].decode() if found else "0-0"

    def first_event_id(self) -> str | None:
        found = self.call(lambda c: c.xrange(self.events_key, count=1))
        return found[0][0].decode() if found else None

    def read_records(self, redis_keys: Iterable[str]) -> list[HubRecord | None]:
        """The records at ``redis_keys`` (None where the key is gone), in one round trip."""
        names = list(redis_keys)
        if not names:
            return []

        def read(c: Any) -> list[Any]:
            pipe = c.pipeline(transaction=False)
            for name in names:
                pipe.hmget(name, "host", "source", "key", "summary", "verdict")
            return pipe.execute()

        out: list[HubRecord | None] = []
        for name, fields in zip(names, self.call(read)):
            out.append(None if not fields or all(f is None for f in fields) else HubRecord(name, *fields))
        return out

    def read_document(self, redis_key: str, limit: int) -> tuple[bytes, int, bytes | None] | None:
        """(version, size, the published state file) of one record, the file None when over ``limit``; None when gone."""
        script = self.script("read_document", _READ_DOCUMENT)
        found = self.call(lambda c: script(keys=[redis_key], args=[limit]))
        if not found:
            return None
        return found[0], int(found[1]), found[2] if len(found) > 2 else None

    def scan_records(self, batch: int = SCAN_BATCH) -> Iterator[list[HubRecord]]:
        """Every record, in batches."""
        names = sorted(self.record_keys())
        for start in range(0, len(names), batch):
            yield [r for r in self.read_records(names[start : start + batch]) if r is not None]

    def read_events(self, after: str, *, block_ms: int, count: int = 1000) -> list[HubEvent]:
        """Change-stream entries after ``after``, waiting up to ``block_ms`` for the first."""
        found = self.call(lambda c: c.xread({self.events_key: after}, count=count, block=block_ms))
        events = []
        for _stream, entries in found or ():
            for entry_id, fields in entries:
                op = fields.get(b"op", b"").decode(errors="replace")
                name = fields.get(b"k", b"").decode(errors="replace")
                events.append(HubEvent(entry_id.decode(), op, name))
        return events

    def leases(self) -> list[HostLease]:
        """Every host that ever renewed a lease: alive or not, and silent for how long."""
        script = self.script("leases", _LEASES)
        raw = self.call(lambda c: script(keys=[self.hosts_key], args=[f"{self.prefix}:host:"]))
        now_ms = int(raw[0])
        out = []
        for i in range(1, len(raw) - 2, 3):
            host = raw[i].decode(errors="replace")
            try:
                last_ms = int(raw[i + 1])
            except ValueError:
                continue
            out.append(HostLease(host, bool(int(raw[i + 2])), max(0.0, (now_ms - last_ms) / 1000)))
        return out

    def devices(self, hosts: Iterable[str]) -> dict[str, bytes]:
        return self._snapshots(hosts, self.devices_key)

    def gpus(self, hosts: Iterable[str]) -> dict[str, bytes]:
        return self._snapshots(hosts, self.gpus_key)

    def _snapshots(self, hosts: Iterable[str], key: Callable[[str], str]) -> dict[str, bytes]:
        """host -> its snapshot text, for the hosts that have one (one round trip)."""
        names = list(hosts)
        if not names:
            return {}
        values = self.call(lambda c: c.mget([key(h) for h in names]))
        return {h: v for h, v in zip(names, values) if v is not None}


def event_id_before(a: str, b: str) -> bool:
    """Whether stream id ``a`` is older than ``b`` (``ms-seq`` compared as numbers)."""

    def parts(text: str) -> tuple[int, int]:
        ms, _, seq = text.partition("-")
        return int(ms), int(seq or 0)

    return parts(a) < parts(b)


__all__ = ["EVENTS_MAXLEN", "HostLease", "Hub", "LeaseHeld", "LeaseHolder", "parse_holder", "HubEvent", "HubRecord", "event_id_before", "record_version"]
