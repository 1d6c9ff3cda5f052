"""The messages between the coordinator and its workers: JSON lines over a socket pair.

Stdlib only, so that worker processes start without the state layer.

Worker -> coordinator::

    {"t": "hello", "pid": int}
    {"t": "batch", "at": time, "done": [RESULT...], "cur": CURRENT | null, "need": bool}
    {"t": "fatal", "error": str, "traceback": str}
    {"t": "kv", "n": int, "op": "get"|"set"|"del"|"incr"|"all", "k": key | null, "v": value}
    {"t": "bye"}

    RESULT  = {"i": index, "r": id_run, "s": "completed"|"failed"|"interrupted", "f": fields,
               "st": state, "e": EXC, "t0": time, "t1": time, "step": name}
              ("f", "st", "e" and "step" are left out when empty or null: a missing one is empty)
    CURRENT = {"i": index, "step": name, "t0": time, "f": fields | absent}
    EXC     = {"type": str, "message": str, "traceback": str}

Coordinator -> worker::

    {"t": "init", "experiment_id": str, "attempt": int, "config": {...}}
    {"t": "assign", "runs": [[index, id_run, params], ...]}
    {"t": "stop"}      finish the current run, report, exit
    {"t": "done"}      no more work: exit once the local queue is empty
    {"t": "kv", "n": int, "v": value, "found": bool}   or   {"t": "kv", "n": int, "error": str}
                       the answer to the worker's ``kv`` request ``n`` (``runtime.runner.shared``)
"""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Callable, Iterator
from datetime import date, datetime
from enum import Enum
from pathlib import PurePath
from typing import Any


def to_jsonable(value: Any) -> Any:
    """A JSON-safe stand-in for values steps commonly store (numpy scalars, paths, sets...).

    Non-finite numbers are not stood in for: JSON has none, and a string
    "nan" where a number was would be a silent change of type.
    """
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


_ENCODER = json.JSONEncoder(default=_default, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
"""One encoder for every message: ``json.dumps`` with options builds a new one per call (a worker encodes
one result per run; cProfile of 100,000 runs: 0.86 s in ``json.dumps``, 0.05 s of it in the constructor)."""


def dumps(value: Any) -> bytes:
    """Compact JSON bytes, strictly.

    NaN and infinities (JSON has neither) and strings that UTF-8 cannot carry
    (lone surrogates) raise ``ValueError`` instead of being changed on the way:
    whatever is sent is stored exactly as the step left it.
    """
    return _ENCODER.encode(value).encode("utf-8")


def encode(message: dict[str, Any]) -> bytes:
    """One message as a line."""
    return dumps(message) + b"\n"


def unstorable(value: Any, where: str) -> str | None:
    """Where in ``value`` the first thing JSON cannot store exactly is, and what it is (None: nothing).

    Used to explain a failed ``dumps``, so only as thorough as its failures.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} is {value!r} (JSON has no NaN or infinity; store None or a string)"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{where} holds a lone surrogate, which UTF-8 cannot store ({safe_text(value[:60])!r})"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = unstorable(key, f"{where} key") if isinstance(key, str) else None
            found = found or unstorable(item, f"{where}.{safe_text(str(key))[:60]}")
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for n, item in enumerate(value):
            found = unstorable(item, f"{where}[{n}]")
            if found:
                return found
        return None
    try:
        converted = to_jsonable(value)
    except Exception:  # noqa: BLE001 - the failure being explained was this one
        return None
    return None if converted is value else unstorable(converted, where)


def safe_text(text: str) -> str:
    """``text`` with what UTF-8 cannot carry written as backslash escapes (always encodable)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class LineReader:
    """Split a byte stream into decoded JSON messages (``decode``: ``json.loads`` or a faster equivalent)."""

    def __init__(self, decode: Callable[[bytes], Any] = json.loads) -> None:
        self._buffer = bytearray()
        self._decode = decode

    def feed(self, data: bytes) -> Iterator[dict[str, Any]]:
        """The messages ``data`` completes.

        Only ``data`` is searched for a line's end, and each line is cut out once:
        a batch of 8,192 results (about 800 KB) arrives in several reads, and
        searching the whole buffer at each read, then copying every line twice
        and once more to strip it, was a tenth of the coordinator's samples.
        """
        self._buffer += data
        if b"\n" not in data:
            return
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line and not line.isspace():
                yield self._decode(line)


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(encode(message))
