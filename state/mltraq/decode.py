"""MLtraq's stored values turned into plain Python data, executing nothing.

MLtraq writes a run field that SQL cannot hold natively as a blob: an optional
``C01`` prefix with zlib after it, then a pickle of builtins only, in which
values of other types are tagged dictionaries ``{"DATAPAK-0": kind, "value": v}``.
A pickle can name any importable callable and call it; the only unpickler used
here refuses every global (``find_class`` always raises), so a blob that names
``os.system`` is a broken value, never a call. The tags are decoded with the
standard library where it suffices (Bunch, UUID, datetime64); NumPy arrays and
pandas/arrow frames need numpy/pyarrow, which expwatch does not depend on: when
they cannot be imported the value is shown as ``N bytes of <kind>``. The
``unsafe_pickle`` column (a whole pickled Experiment) is never read at all.
"""

from __future__ import annotations

import functools
import importlib
import io
import pickle
import struct
import uuid
import zlib
from datetime import datetime, timedelta, timezone
from typing import Any

#: The zlib prefix MLtraq's serializer writes (``C00`` marks uncompressed data, which it never writes).
ZLIB_PREFIX = b"C01"
#: Decompressed blobs larger than this are refused (a small blob may inflate without bound).
MAX_DECODED_BYTES = 64 * 1024 * 1024
#: Deeper nesting than this is refused rather than recursed into.
MAX_DEPTH = 200
TAG = "DATAPAK-0"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Opaque(str):
    """A value shown as text because it could not, or need not, be decoded (``12 bytes of numpy.ndarray-0``).

    A ``str`` so every table, tree and JSON dump shows it as it is; a class of
    its own so callers can tell it from a string MLtraq stored.
    """

    __slots__ = ()


class UnreadableValue(Opaque):
    """A blob that is not a safe pickle (a global, truncated, unknown tag): the text says why."""

    __slots__ = ()


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the pickle names a global ({module}.{name}); refused")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("the pickle uses a persistent id; refused")


def looks_serialized(blob: bytes) -> bool:
    """Whether a blob is MLtraq-serialized (zlib-prefixed, or a protocol 2+ pickle)."""
    return blob.startswith(ZLIB_PREFIX) or (len(blob) > 1 and blob[0] == 0x80 and 2 <= blob[1] <= 5)


def unpickle_builtins(blob: bytes) -> Any:
    """``C01``+zlib removed, then unpickled with every global refused; raises ``ValueError`` with the reason."""
    data = blob
    if data.startswith(ZLIB_PREFIX):
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(data[len(ZLIB_PREFIX):], MAX_DECODED_BYTES)
        except zlib.error as exc:
            raise ValueError(f"not zlib data after the C01 prefix ({exc})") from None
        if inflater.unconsumed_tail:
            raise ValueError(f"decompresses to more than {MAX_DECODED_BYTES // (1024 * 1024)} MiB; not decoded")
        if not inflater.eof:
            raise ValueError("zlib data is truncated")
    try:
        return _NoGlobals(io.BytesIO(data)).load()
    except pickle.UnpicklingError as exc:
        raise ValueError(str(exc)) from None
    except (EOFError, IndexError, KeyError, TypeError, AttributeError, OverflowError, struct.error) as exc:
        raise ValueError(f"not a complete pickle ({type(exc).__name__}: {exc})") from None
    except (MemoryError, RecursionError) as exc:
        raise ValueError(f"pickle too large or too deep ({type(exc).__name__})") from None


def decode_blob(blob: bytes) -> Any:
    """A stored blob as plain data; an unreadable one becomes an ``UnreadableValue`` saying why."""
    try:
        return decode_tags(unpickle_builtins(blob))
    except ValueError as exc:
        return UnreadableValue(f"unreadable value ({len(blob):,} bytes): {exc}")


def decode_tags(value: Any, depth: int = 0) -> Any:
    """DATAPAK-tagged dictionaries replaced by their values, recursively (sets and tuples become lists)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} deep")
    kind = type(value)
    if kind in (str, int, float, bool, type(None)):
        return value
    if kind is bytes:
        return Opaque(f"{len(value):,} bytes")
    if kind is dict:
        if TAG in value:
            return _tagged(value, depth)
        return {_key(k): decode_tags(v, depth + 1) for k, v in value.items()}
    if kind in (list, tuple, set, frozenset):
        return [decode_tags(v, depth + 1) for v in value]
    if kind is complex or kind is bytearray:
        return Opaque(repr(value))
    raise ValueError(f"unexpected {kind.__name__} in the pickle")


def _key(key: Any) -> str:
    return key if type(key) is str else repr(key)


def _tagged(value: dict, depth: int) -> Any:
    kind, inner = value.get(TAG), value.get("value")
    if kind in ("mltraq.Bunch-0", "mltraq.Sequence-0"):
        return decode_tags(inner, depth + 1)
    if kind == "uuid.UUID-0" and isinstance(inner, str):
        try:
            return str(uuid.UUID(hex=inner))
        except ValueError:
            raise ValueError(f"bad UUID {inner[:40]!r}") from None
    if kind == "numpy.datetime64-0" and type(inner) is int:
        try:
            return (_EPOCH + timedelta(microseconds=inner)).isoformat()
        except OverflowError:
            return Opaque(f"datetime64 {inner} µs")
    if kind in ("mltraq.DataStore-0", "mltraq.ArchiveStore-0") and isinstance(inner, str):
        return Opaque(f"{kind.split('.')[1][:-2]} {inner}")
    if isinstance(inner, bytes):
        if kind == "numpy.ndarray-0":
            return _ndarray(inner)
        if kind in ("pandas.DataFrame-0", "pandas.Series-0", "pyarrow.Table-0"):
            return _feather(inner, kind[:-2])
        if kind == "mltraq.Archive-0":
            return Opaque(f"{len(inner):,} bytes of {kind}")
    raise ValueError(f"unknown DATAPAK tag {str(kind)[:60]!r}")


@functools.cache
def _optional(module: str) -> Any:
    """``module`` imported, or None when it is not installed (looked for once: a failed import is not cached)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _ndarray(data: bytes) -> Any:
    """An ``.npy`` payload as nested lists (numpy's own reader, pickles refused)."""
    numpy = _optional("numpy")
    if numpy is None:
        return Opaque(f"{len(data):,} bytes of numpy.ndarray")
    try:
        array = numpy.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"not a NumPy array ({exc})") from None
    return decode_tags(array.tolist()) if array.dtype.kind not in "OV" else Opaque(f"{len(data):,} bytes of numpy.ndarray")


def _feather(data: bytes, kind: str) -> Any:
    """A Feather payload (pandas frames and series, arrow tables) as ``{column: [values]}`` (a series: its values)."""
    pyarrow = _optional("pyarrow")
    if pyarrow is None or _optional("pyarrow.feather") is None:
        return Opaque(f"{len(data):,} bytes of {kind}")
    try:
        table = pyarrow.feather.read_table(pyarrow.BufferReader(data))
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        raise ValueError(f"not a Feather table ({exc})") from None
    columns = {str(name): _plain(table.column(name).to_pylist()) for name in table.column_names}
    if kind == "pandas.Series" and columns:
        return next(iter(columns.values()))
    return columns


def _plain(values: list[Any]) -> list[Any]:
    """Arrow values made JSON-friendly (timestamps as ISO text, bytes summarised)."""
    out = []
    for v in values:
        if isinstance(v, datetime):
            out.append(v.isoformat())
        elif isinstance(v, bytes):
            out.append(Opaque(f"{len(v):,} bytes"))
        else:
            out.append(v)
    return out


__all__ = [
    "MAX_DECODED_BYTES",
    "Opaque",
    "UnreadableValue",
    "decode_blob",
    "decode_tags",
    "looks_serialized",
    "unpickle_builtins",
]
