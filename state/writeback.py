"""Writing a changed model back over the file it was read from, changing nothing else.

A model is a lossy picture of its file: ``1e999`` reads as infinity and
dumps as ``null``, a 25-digit decimal reads as the nearest float, and a lone
surrogate (``"\\udc80"`` in the file) cannot be dumped as UTF-8 at all. So a
write-back does not dump the model: it takes the file's own JSON, read
exactly (numbers kept as their text), and replaces only the values the
change made different, found by comparing the model before and after.
Everything else keeps its bytes' meaning, and the file keeps its layout
(indented or compact). A new value that JSON cannot carry exactly is
refused with the reason; nothing is written then.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pydantic_core
from pydantic import BaseModel


class UnpreservableValue(ValueError):
    """A write-back would have to change or drop a value; the message says which and why."""


class _Number(str):
    """A JSON number as the file wrote it."""

    __slots__ = ()


def write_back(original: bytes, before: BaseModel, after: BaseModel) -> bytes:
    """The bytes of ``original`` with the changes from ``before`` to ``after`` applied, and no others."""
    _refuse_new_non_finite(before, after)
    if _dumps_exactly(before, original):
        # The common case (a file written by its own tool or by us): the model's dump is exact.
        return after.to_json().encode("utf-8")  # type: ignore[attr-defined]
    raw = json.loads(original.decode("utf-8"), parse_float=_Number, parse_int=_Number)
    old = before.model_dump(mode="json", by_alias=True)
    new = after.model_dump(mode="json", by_alias=True)
    patched = _patch(raw, old, new, "")
    indent = 2 if b"\n" in original.strip()[:4096] else None
    return (_dump(patched, indent, 0, "") + ("\n" if original.endswith(b"\n") else "")).encode("utf-8")


def _dumps_exactly(model: BaseModel, original: bytes) -> bool:
    """Whether dumping ``model`` gives back the file's own bytes (then nothing can be lost)."""
    try:
        dumped = model.to_json().encode("utf-8")  # type: ignore[attr-defined]
    except ValueError:  # a lone surrogate (pydantic's error is a ValueError)
        return False
    return dumped == original or dumped == original.rstrip(b"\n")


def _refuse_new_non_finite(before: BaseModel, after: BaseModel) -> None:
    """A NaN or infinity the change brings (the JSON dump would make it null) is refused.

    One the file already had (``1e999``) is kept as the file wrote it.
    """
    try:
        text = pydantic_core.to_json(after.model_dump(by_alias=True), inf_nan_mode="constants", ensure_ascii=True)
    except ValueError:
        text = b"NaN"  # cannot tell cheaply: walk the values
    if b"Infinity" not in text and b"NaN" not in text:
        return  # none at all (the constants are the only way they can appear in this text)
    had = _non_finite(before.model_dump(by_alias=True), "")
    for where, value in _non_finite(after.model_dump(by_alias=True), "").items():
        old = had.get(where)
        if old is None or not (old == value or math.isnan(old) and math.isnan(value)):
            raise UnpreservableValue(f"{where} would be {value!r}, which JSON has no number for")


def _non_finite(value: Any, where: str) -> dict[str, float]:
    if isinstance(value, float):
        return {} if math.isfinite(value) else {where: value}
    found: dict[str, float] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            found.update(_non_finite(item, f"{where}.{key}".lstrip(".")))
    elif isinstance(value, (list, tuple)):
        for n, item in enumerate(value):
            found.update(_non_finite(item, f"{where}[{n}]"))
    return found


def _patch(raw: Any, old: Any, new: Any, where: str) -> Any:
    """``raw`` with the parts where ``old`` and ``new`` differ taken from ``new``."""
    if old == new and not _has_nan(new):
        return raw
    if isinstance(raw, dict) and isinstance(old, dict) and isinstance(new, dict):
        result = {}
        for key, value in raw.items():
            if key in new:
                result[key] = _patch(value, old.get(key), new[key], f"{where}.{key}".lstrip("."))
            elif key in old:
                continue  # the change removed it
            else:
                result[key] = value
        for key, value in new.items():
            if key not in raw and (key not in old or old[key] != value):
                result[key] = value
        return result
    if isinstance(raw, list) and isinstance(old, list) and isinstance(new, list) and len(raw) == len(old) == len(new):
        return [_patch(r, o, n, f"{where}[{i}]") for i, (r, o, n) in enumerate(zip(raw, old, new))]
    return new


def _has_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _dump(value: Any, indent: int | None, level: int, where: str) -> str:
    if isinstance(value, _Number):
        return str.__str__(value)
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int):
        return json.dumps(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnpreservableValue(f"{where or 'a value'} would be {value!r}, which JSON has no number for")
        return json.dumps(value)
    if isinstance(value, dict):
        items = [(_string(str(k)), _dump(v, indent, level + 1, f"{where}.{k}".lstrip("."))) for k, v in value.items()]
        if not items:
            return "{}"
        if indent is None:
            return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
        pad, inner = " " * (indent * level), " " * (indent * (level + 1))
        return "{\n" + ",\n".join(f"{inner}{k}: {v}" for k, v in items) + f"\n{pad}}}"
    if isinstance(value, list):
        parts = [_dump(v, indent, level + 1, f"{where}[{i}]") for i, v in enumerate(value)]
        if not parts:
            return "[]"
        if indent is None:
            return "[" + ",".join(parts) + "]"
        pad, inner = " " * (indent * level), " " * (indent * (level + 1))
        return "[\n" + ",\n".join(inner + p for p in parts) + f"\n{pad}]"
    raise UnpreservableValue(f"{where or 'a value'} is a {type(value).__name__}, which JSON cannot hold")


def _string(text: str) -> str:
    """A JSON string; one holding a lone surrogate is written with escapes, as the file had it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(text, ensure_ascii=True)
    return json.dumps(text, ensure_ascii=False)
