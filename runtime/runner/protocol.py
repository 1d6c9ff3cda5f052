"""The messages between the coordinator and its workers: JSON lines over a socket pair.

Stdlib only, so that worker processes start without the state layer.

Worker -> coordinator::

    {"t": "hello", "pid": int}
    {"t": "batch", "at": time, "done": [RESULT...], "cur": CURRENT | null, "need": bool}
    {"t": "fatal", "error": str, "traceback": str}
    {"t": "bye"}

    RESULT  = {"i": index, "s": "completed"|"failed"|"interrupted", "f": fields,
               "st": state, "e": EXC | null, "t0": time, "t1": time}
    CURRENT = {"i": index, "step": name, "t0": time, "f": fields | absent}
    EXC     = {"type": str, "message": str, "traceback": str}

Coordinator -> worker::

    {"t": "init", "experiment_id": str, "attempt": int, "config": {...}}
    {"t": "assign", "runs": [[index, id_run, params], ...]}
    {"t": "stop"}      finish the current run, report, exit
    {"t": "done"}      no more work: exit once the local queue is empty
"""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Iterator
from datetime import date, datetime
from enum import Enum
from pathlib import PurePath
from typing import Any


def to_jsonable(value: Any) -> Any:
    """A JSON-safe stand-in for values steps commonly store (numpy scalars, paths, sets...)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, (set, frozenset, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        try:
            return item()
        except Exception:
            pass
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        try:
            return tolist()
        except Exception:
            pass
    return repr(value)


def _default(value: Any) -> Any:
    converted = to_jsonable(value)
    if converted is value:
        return repr(value)
    return converted


def dumps(value: Any) -> bytes:
    """Compact JSON bytes; NaN and infinities become strings instead of invalid JSON."""
    try:
        text = json.dumps(value, default=_default, allow_nan=False, separators=(",", ":"))
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            raise
        text = json.dumps(_scrub(value), default=_default, separators=(",", ":"))
    return text.encode("utf-8", "replace")


def encode(message: dict[str, Any]) -> bytes:
    """One message as a line."""
    return dumps(message) + b"\n"


def _scrub(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


class LineReader:
    """Split a byte stream into decoded JSON messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[dict[str, Any]]:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                return
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if line.strip():
                yield json.loads(line)


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(encode(message))
