"""``run.shared``: the key-value map every step of one experiment shares, in any worker (design §12).

A step writes ``run.shared["sample_id"] = "s123"`` (or ``run.shared.sample_id
= ...``) and any step of any run, in any worker, reads it back. The map lives
in the coordinator, the one writer, which stores it beside the experiment
(``state.shared``); workers ask it for every read and write over their socket
(``protocol``: a ``kv`` request, answered by a ``kv`` reply), so a read always
sees the latest write of every worker, and ``incr`` is one atomic operation
however many workers count at once.

Values are JSON values only (None, booleans, numbers, strings, lists, and
dicts with string keys), checked before they leave the step: anything else
raises ``SharedValueError`` in the step, which fails the run saying what and
where. Nothing is converted on the way, so what is read is what was written.

Stdlib only: workers load this module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import Any

from runtime.runner.attrs import ItemAttributes

#: The longest key, in characters.
MAX_KEY_CHARS = 200

#: ``op`` names of the protocol's ``kv`` request.
OPS = frozenset({"get", "set", "del", "incr", "all"})

Transport = Callable[[str, str | None, Any], dict[str, Any]]
"""Sends one operation (op, key, value) and returns the reply: ``{"v": ..., "found": bool}`` or ``{"error": str}``."""


class SharedValueError(TypeError):
    """A value, or key, that shared run state cannot hold; the message says which and why."""


class SharedStateUnavailable(RuntimeError):
    """The coordinator that holds the map is gone, or refused the operation."""


def json_problem(value: Any, where: str, depth: int = 0) -> str | None:
    """Why ``value`` is not a JSON value exactly (None if it is): the first offending part, named by path."""
    if depth > 100:
        return f"{where} is nested more than 100 levels deep"
    if value is None or type(value) in (bool, int, str):
        if type(value) is str:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return f"{where} holds a lone surrogate, which UTF-8 cannot store"
        return None
    if type(value) is float:
        return None if math.isfinite(value) else f"{where} is {value!r}, which JSON has no number for"
    if type(value) is list:
        for n, item in enumerate(value):
            found = json_problem(item, f"{where}[{n}]", depth + 1)
            if found:
                return found
        return None
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                return f"{where} has the key {key!r}, not a string"
            found = json_problem(key, f"{where} key", depth + 1) or json_problem(item, f"{where}[{key!r}]", depth + 1)
            if found:
                return found
        return None
    return f"{where} is a {type(value).__qualname__}, not a JSON value"


def check_key(key: Any) -> str:
    if type(key) is not str or not key:
        raise SharedValueError(f"run.shared keys are non-empty strings, not {key!r}")
    if len(key) > MAX_KEY_CHARS:
        raise SharedValueError(f"run.shared key {key[:40]!r}... is over {MAX_KEY_CHARS} characters")
    problem = json_problem(key, "the key")
    if problem:
        raise SharedValueError(f"run.shared key {key.encode('utf-8', 'backslashreplace').decode()!r}: {problem}")
    return key


def check_value(key: str, value: Any) -> Any:
    problem = json_problem(value, f"run.shared[{key!r}]")
    if problem:
        raise SharedValueError(
            f"{problem}: shared run state holds JSON values only "
            "(None, booleans, numbers, strings, lists, dicts with string keys)"
        )
    return value


class SharedMap(ItemAttributes):
    """What a step sees as ``run.shared``: item and attribute access to the experiment's map.

    Every access is one round trip to the holder of the map (a few tens of
    microseconds within a host): read a key once into a local when a step
    needs it in a tight loop.
    """

    __slots__ = ("_send",)

    def __init__(self, transport: Transport | None = None):
        object.__setattr__(self, "_send", transport or LocalTable().transport)

    def _call(self, op: str, key: str | None = None, value: Any = None) -> dict[str, Any]:
        reply = self._send(op, key, value)
        error = reply.get("error")
        if error is not None:
            raise SharedStateUnavailable(f"run.shared: {error}")
        return reply

    # -- mapping access ----------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        reply = self._call("get", check_key(key))
        if not reply.get("found"):
            raise KeyError(key)
        return reply.get("v")

    def __setitem__(self, key: str, value: Any) -> None:
        check_key(key)
        self._call("set", key, check_value(key, value))

    def __delitem__(self, key: str) -> None:
        if not self._call("del", check_key(key)).get("found"):
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return bool(self._call("get", check_key(key)).get("found"))

    def get(self, key: str, default: Any = None) -> Any:
        reply = self._call("get", check_key(key))
        return reply.get("v") if reply.get("found") else default

    def incr(self, key: str, by: int | float = 1) -> int | float:
        """Add ``by`` to the number at ``key`` (0 when absent) as one atomic step; the new value."""
        if type(by) not in (int, float) or not math.isfinite(by):
            raise SharedValueError(f"run.shared.incr({key!r}): the step must be a finite number, not {by!r}")
        return self._call("incr", check_key(key), by)["v"]

    def to_dict(self) -> dict[str, Any]:
        """The whole map as it is now (a copy: changing it changes nothing shared)."""
        return dict(self._call("all")["v"])

    def keys(self) -> list[str]:
        return list(self.to_dict())

    def items(self) -> list[tuple[str, Any]]:
        return list(self.to_dict().items())

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.to_dict())

    def _no_attribute(self, name: str) -> str:
        return f"run.shared has no key {name!r}"

    def __repr__(self) -> str:
        return f"SharedMap({self.to_dict()!r})"


class LocalTable:
    """The map itself and its operations: held by the coordinator, or in-process for a ``Run`` made by hand.

    Requests come from workers, which checked them; they are checked again
    here, since a broken or hostile worker must not put a non-JSON value in
    the file. ``limit`` bounds the encoded size of the whole map.
    """

    def __init__(self, values: dict[str, Any] | None = None, *, limit: int | None = None):
        self.values: dict[str, Any] = dict(values or {})
        self.limit = limit
        self._sizes = {key: _size(key, value) for key, value in self.values.items()}
        self._total = sum(self._sizes.values())
        self.changed = False

    def transport(self, op: str, key: str | None, value: Any) -> dict[str, Any]:
        return self.apply({"op": op, "k": key, "v": value})

    def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply to one request (``op``, ``k`` and ``v`` as the protocol names them)."""
        op, key, value = request.get("op"), request.get("k"), request.get("v")
        if op not in OPS:
            return {"error": f"unknown operation {op!r}"}
        if op == "all":
            return {"v": dict(self.values), "found": True}
        try:
            check_key(key)
            if op == "get":
                return {"v": self.values.get(key), "found": key in self.values}
            if op == "del":
                found = self.values.pop(key, _MISSING) is not _MISSING
                self._total -= self._sizes.pop(key, 0)
                self.changed = self.changed or found
                return {"found": found}
            if op == "incr":
                current = self.values.get(key, 0)
                if type(current) not in (int, float) or type(value) not in (int, float):
                    return {"error": f"incr({key!r}): the value there is {type(current).__name__}, not a number"}
                value = current + value
                if not math.isfinite(value):
                    return {"error": f"incr({key!r}) would store {value!r}, which JSON has no number for"}
            check_value(key, value)
        except SharedValueError as exc:
            return {"error": str(exc)}
        size = _size(key, value)
        total = self._total - self._sizes.get(key, 0) + size
        if self.limit is not None and total > self.limit:
            return {"error": f"storing {key!r} would put the map over its {self.limit:,}-byte limit"}
        self.values[key] = value
        self._sizes[key] = size
        self._total = total
        self.changed = True
        return {"v": value, "found": True}


_MISSING = object()


def _size(key: str, value: Any) -> int:
    return len(key.encode("utf-8")) + len(json.dumps(value, ensure_ascii=False).encode("utf-8")) + 4
