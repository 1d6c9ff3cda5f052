"""An experiment's shared run state (``run.shared``) in the hub: the hash ``P:kv:<host>:<id>``.

Every write is one Lua script, so it is atomic on the server however many
runners, workers or hosts write: ``set`` and ``delete`` keep the map's encoded
size in the field ``""`` (no key is empty) and refuse a write past the limit
the file mode has (``state.shared.MAX_SHARED_BYTES``); ``incr`` adds on the
server. Values are stored as compact JSON text and stay exact: an integer
plus an integer is ``HINCRBY`` (exact over the whole 64-bit range, refused
past it rather than rounded); anything with a float is added in Lua's
doubles, which are Python's, and written with 17 significant digits, which
read back as the same float.

Reads treat the hash as untrusted input, exactly like a file: the read
script measures every value on the server and sends back only what fits the
size limit, so a hostile 500 MB value costs nothing but its length; each
value is then parsed on its own, and one that is not JSON (or too big, or
under an over-long key) becomes that key's error, never the whole read's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from state.hub.connection import HubError
from state.hub.schema import Hub
from state.shared import MAX_SHARED_BYTES, finite_float

#: The most the map may take (keys, values and a few bytes each), as in the file mode.
LIMIT_BYTES = MAX_SHARED_BYTES - 1024
#: A hash with more fields than this is refused as a whole when read.
MAX_FIELDS = 100_000
#: Keys longer than this (in bytes) are shown cut, with an error: the runner writes at most 200 characters.
MAX_KEY_BYTES = 1000
SIZE_FIELD = ""

_SIZE = f"""
local function size_now()
  return tonumber(redis.call('HGET', KEYS[1], '{SIZE_FIELD}') or '0') or 0
end
local function store_size(total)
  if total <= 0 and redis.call('HLEN', KEYS[1]) <= 1 then
    redis.call('DEL', KEYS[1])
  else
    redis.call('HSET', KEYS[1], '{SIZE_FIELD}', string.format('%d', math.max(total, 0)))
  end
end
"""

_SET = _SIZE + """
local old = redis.call('HGET', KEYS[1], ARGV[1])
local total = size_now() + #ARGV[1] + #ARGV[2] + 4
if old then total = total - (#ARGV[1] + #old + 4) end
if total > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
store_size(total)
return 1
"""

_DELETE = _SIZE + """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
store_size(size_now() - (#ARGV[1] + #old + 4))
return 1
"""

# ARGV: key, step (JSON text), '1' when the step is an integer, the size limit.
# Returns {1, new value's JSON text} or {0, why}.
_INCR = _SIZE + """
local function json_number(s)
  local i = 1
  if string.sub(s, 1, 1) == '-' then i = 2 end
  local digits = string.match(s, '^%d+', i)
  if not digits or (#digits > 1 and string.sub(digits, 1, 1) == '0') then return nil end
  i = i + #digits
  local frac = string.match(s, '^%.%d+', i)
  if frac then i = i + #frac end
  local exp = string.match(s, '^[eE][-+]?%d+', i)
  if exp then i = i + #exp end
  if i ~= #s + 1 then return nil end
  if frac or exp then return 'float' end
  return 'int'
end
local old = redis.call('HGET', KEYS[1], ARGV[1])
local current = old or '0'
local kind = json_number(current)
if not kind then return {0, 'not a number'} end
local text
if kind == 'int' and ARGV[3] == '1' then
  local done = redis.pcall('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
  if type(done) == 'table' and done.err then return {0, 'outside the 64-bit integers the hub adds exactly'} end
  text = redis.call('HGET', KEYS[1], ARGV[1])
else
  local sum = tonumber(current) + tonumber(ARGV[2])
  if sum ~= sum or sum == math.huge or sum == -math.huge then return {0, 'not finite'} end
  text = string.format('%.17g', sum)
  if not string.find(text, '[.eE]') then text = text .. '.0' end
  redis.call('HSET', KEYS[1], ARGV[1], text)
end
local total = size_now() + #ARGV[1] + #text + 4
if old then total = total - (#ARGV[1] + #old + 4) end
if not old and total > tonumber(ARGV[4]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return {0, 'over the limit'}
end
store_size(total)
return {1, text}
"""

# ARGV: the byte budget, the most fields, the longest key, and optionally the one key to read.
# Returns {0, field count} when there are too many, else {1, key, kind, payload, ...} with kind
# 'v' (payload: the value), 'big' (payload: its length) or 'longkey' (key cut, payload: full length).
_READ = """
local budget, used = tonumber(ARGV[1]), 0
local keys
if ARGV[4] then
  if redis.call('HEXISTS', KEYS[1], ARGV[4]) == 0 then return {1} end
  keys = {ARGV[4]}
else
  local n = redis.call('HLEN', KEYS[1])
  if n > tonumber(ARGV[2]) + 1 then return {0, n} end
  keys = redis.call('HKEYS', KEYS[1])
end
local out = {1}
for _, k in ipairs(keys) do
  if k ~= '' then
    local len = redis.call('HSTRLEN', KEYS[1], k)
    if #k > tonumber(ARGV[3]) then
      out[#out + 1] = string.sub(k, 1, tonumber(ARGV[3])); out[#out + 1] = 'longkey'; out[#out + 1] = tostring(#k)
    elseif used + #k + len > budget then
      out[#out + 1] = k; out[#out + 1] = 'big'; out[#out + 1] = tostring(len)
    else
      used = used + #k + len
      out[#out + 1] = k; out[#out + 1] = 'v'; out[#out + 1] = redis.call('HGET', KEYS[1], k)
    end
  end
end
return out
"""


class SharedRefused(Exception):
    """The hub refused a write to the map (too big, not a number to add to); the message says why."""


@dataclass(frozen=True, slots=True)
class SharedEntry:
    """One key of the map as read: its value, or why it cannot be shown."""

    key: str
    value: Any = None
    error: str | None = None


def encode_value(value: Any) -> str:
    """A JSON value as the hub stores it (the caller checked that it is one)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def decode_value(raw: bytes) -> Any:
    """A stored value back; ``ValueError`` with the reason when it is not JSON."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=finite_float)
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    except ValueError as exc:  # NaN, Infinity, a number no float holds
        raise ValueError(f"not valid JSON ({exc})") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class HubSharedState:
    """The shared map of experiment ``experiment_id`` run on ``host``, in ``hub``.

    Every Redis failure leaves as ``HubError`` (one line); a write the map
    cannot take as ``SharedRefused``.
    """

    def __init__(self, hub: Hub, host: str, experiment_id: str, *, limit: int = LIMIT_BYTES) -> None:
        self.hub = hub
        self.host = host
        self.experiment_id = experiment_id
        self.limit = limit
        self.redis_key = hub.shared_key(host, experiment_id)

    def set(self, key: str, value: Any) -> None:
        script = self.hub.script("kv_set", _SET)
        text = encode_value(value)
        if not self.hub.call(lambda c: script(keys=[self.redis_key], args=[key, text, self.limit])):
            raise SharedRefused(f"storing {key!r} would put the map over its {self.limit:,}-byte limit")

    def delete(self, key: str) -> bool:
        script = self.hub.script("kv_delete", _DELETE)
        return bool(self.hub.call(lambda c: script(keys=[self.redis_key], args=[key])))

    def incr(self, key: str, by: int | float) -> int | float:
        """Add ``by`` to the number at ``key`` (0 when absent) on the server; the new value."""
        script = self.hub.script("kv_incr", _INCR)
        step = encode_value(by)
        args = [key, step, "1" if type(by) is int else "0", self.limit]
        ok, text = self.hub.call(lambda c: script(keys=[self.redis_key], args=args))
        why = text.decode("utf-8", "replace")
        if not ok:
            if why == "not a number":
                raise SharedRefused(f"incr({key!r}): the value there is not a number")
            if why == "over the limit":
                raise SharedRefused(f"storing {key!r} would put the map over its {self.limit:,}-byte limit")
            raise SharedRefused(f"incr({key!r}) by {step}: the result is {why}")
        return decode_value(text)

    def read(self, key: str | None = None) -> list[SharedEntry]:
        """The map (or its one ``key``), keys sorted, each entry checked on its own."""
        script = self.hub.script("kv_read", _READ)
        args: list[Any] = [self.limit, MAX_FIELDS, MAX_KEY_BYTES]
        if key is not None:
            args.append(key)
        raw = self.hub.call(lambda c: script(keys=[self.redis_key], args=args))
        if not raw or raw[0] != 1:
            count = raw[1] if raw and len(raw) > 1 else "?"
            raise HubError(f"hub {self.hub.address.shown}: {self.redis_key} has {count} keys, over the {MAX_FIELDS:,} "
                           "a shared map may have: not read")
        entries = [_entry(raw[i], raw[i + 1], raw[i + 2], self.limit) for i in range(1, len(raw) - 2, 3)]
        return sorted(entries, key=lambda e: e.key)

    def values(self, key: str | None = None) -> dict[str, Any]:
        """``read`` for a program that needs every value: the first unusable one is a ``SharedRefused``."""
        out = {}
        for entry in self.read(key):
            if entry.error is not None:
                raise SharedRefused(f"the hub's value of {entry.key!r} {entry.error}")
            out[entry.key] = entry.value
        return out


def _entry(raw_key: bytes, kind: bytes, payload: bytes, limit: int) -> SharedEntry:
    key = raw_key.decode("utf-8", "replace")
    if kind == b"longkey":
        return SharedEntry(key + "…", error=f"has a key of {int(payload):,} bytes, over the {MAX_KEY_BYTES:,} shown")
    if kind == b"big":
        return SharedEntry(key, error=f"is {int(payload):,} bytes, over the {limit:,}-byte limit of shared state")
    try:
        return SharedEntry(key, decode_value(payload))
    except ValueError as exc:
        return SharedEntry(key, error=f"is {exc}")


def hosts_with_shared(hub: Hub, experiment_id: str) -> list[str]:
    """The hosts whose runners stored shared state for ``experiment_id`` in this fleet, sorted."""
    prefix = hub.shared_key("", "")[:-1]  # "P:kv:"
    pattern = prefix + "*:" + _glob_escape(experiment_id)
    names = hub.call(lambda c: [k.decode("utf-8", "replace") for k in c.scan_iter(match=pattern, count=1000)])
    hosts = set()
    for name in names:
        host, _, ident = name[len(prefix):].partition(":")
        if ident == experiment_id and host:
            hosts.add(host)
    return sorted(hosts)


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


__all__ = ["LIMIT_BYTES", "HubSharedState", "SharedEntry", "SharedRefused", "decode_value", "encode_value", "hosts_with_shared"]
