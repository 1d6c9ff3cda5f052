"""Decoding MLtraq blobs executes nothing and fails with a reason, never an exception."""

from __future__ import annotations

import importlib.util
import pickle
import zlib
from pathlib import Path

import pytest

from state.mltraq.decode import MAX_DECODED_BYTES, Opaque, UnreadableValue, decode_blob, looks_serialized

from tests.mltraq.hostile import RunsCommand, bunch, touch_payload

HAS_NUMPY = importlib.util.find_spec("numpy") is not None


def test_a_global_is_refused_and_nothing_runs(tmp_path: Path):
    marker = tmp_path / "pwned"
    for blob in (touch_payload(marker), b"C01" + zlib.compress(touch_payload(marker))):
        value = decode_blob(blob)
        assert isinstance(value, UnreadableValue)
        assert "names a global (posix.system)" in value or "names a global (os.system)" in value
    nested = pickle.dumps({"ok": 1, "bad": RunsCommand(f"touch {marker}")}, protocol=5)
    assert isinstance(decode_blob(nested), UnreadableValue)
    assert not marker.exists()


def test_tags_decode_with_the_standard_library():
    blob = pickle.dumps(bunch({
        "id": {"DATAPAK-0": "uuid.UUID-0", "value": "0" * 31 + "3"},
        "when": {"DATAPAK-0": "numpy.datetime64-0", "value": 1_704_215_775_123_450},
        "items": (1, {2}, [None, b"xy"]),
    }), protocol=5)
    assert decode_blob(blob) == {
        "id": "00000000-0000-0000-0000-000000000003",
        "when": "2024-01-02T17:16:15.123450+00:00",
        "items": [1, [2], [None, "2 bytes"]],
    }


def test_zlib_prefix_and_compression_bomb():
    assert decode_blob(b"C01" + zlib.compress(pickle.dumps([1, "a"]))) == [1, "a"]
    bomb = b"C01" + zlib.compress(pickle.dumps(b"\0" * (MAX_DECODED_BYTES + 1)), 9)
    assert "more than 64 MiB" in decode_blob(bomb)
    assert "truncated" in decode_blob(b"C01" + zlib.compress(pickle.dumps([1] * 1000))[:-8])


@pytest.mark.parametrize(
    "blob, reason",
    [
        (pickle.dumps({"a": list(range(100))}, protocol=5)[:-20], "truncated"),
        (pickle.dumps({"DATAPAK-0": "evil.Kind-0", "value": b""}), "unknown DATAPAK tag"),
        (b"\x80\x05garbage", "pickle"),
    ],
)
def test_broken_blobs_become_reasons(blob: bytes, reason: str):
    value = decode_blob(blob)
    assert isinstance(value, UnreadableValue) and reason in value


def test_plain_bytes_are_not_taken_for_pickles():
    assert not looks_serialized(b"PNG\x89 raw bytes")
    assert looks_serialized(b"C01x") and looks_serialized(pickle.dumps(1, protocol=4))


@pytest.mark.skipif(HAS_NUMPY, reason="numpy is installed: arrays decode")
def test_arrays_and_frames_without_numpy_or_pyarrow_show_their_size():
    array = decode_blob(pickle.dumps({"DATAPAK-0": "numpy.ndarray-0", "value": b"\x93NUMPY" + b"\0" * 10}))
    frame = decode_blob(pickle.dumps({"DATAPAK-0": "pandas.DataFrame-0", "value": b"ARROW1" + b"\0" * 20}))
    assert isinstance(array, Opaque) and array == "16 bytes of numpy.ndarray"
    assert isinstance(frame, Opaque) and frame == "26 bytes of pandas.DataFrame"
