"""``state.lem_bytes.checked_lem`` vouches only for what ``decode_json`` reads the same way.

Whatever the bytes, a file it accepts decodes to the very value it returned, and
a key named twice (anywhere, however the text is spaced) is never accepted. The
files llenergymeasure writes must really be accepted, or ``list --json`` would
only ever take the slower path these tests compare it with.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state.decoding import BrokenStateFile, decode_json
from state.lem_bytes import checked_lem
from state.record import StateFormat
from tests.hardening.fuzz_strategies import hostile_bytes, near_valid_documents
from tests.state.test_scan_read import _v1, _v2, odd_documents

CI = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None, derandomize=True)

BASE = {
    "experiment_id": "exp-1",
    "status": "completed",
    "prompt_args": {"dataset": "alpaca", "n": 3},
    "process_progress": {
        "0": {"process_index": 0, "status": "completed", "started_at": "2025-03-01T12:00:00", "error_message": "x"},
    },
    "completed_runs": {"r1": "2025-03-01T12:00:00"},
    "last_updated": "2025-03-01T12:01:00.250000",
}


def assert_sound(data: bytes) -> Any:
    """An accepted file decodes to the value returned; returns that outcome."""
    checked = checked_lem(data)
    if checked is not None:
        assert checked[1] == decode_json(data)
    return checked


def spaced(value: Any, draw: st.DrawFn, twice: tuple[dict[str, Any], str, Any] | None = None, tight: bool = False) -> str:
    """``value`` as JSON text with whitespace drawn around every colon and comma (``tight``: none
    before a colon, as JSON writers space it); ``twice``: (an object in it, one of its keys,
    another value) writes that key once more at its end."""
    pad = st.sampled_from(["", " ", "  ", "\n", "\t", "\r\n"])
    if isinstance(value, dict):
        pairs = list(value.items())
        if twice is not None and value is twice[0]:
            pairs.append(twice[1:])
        items = [f"{json.dumps(k)}{'' if tight else draw(pad)}:{draw(pad)}{spaced(v, draw, twice, tight)}" for k, v in pairs]
        return "{" + f"{draw(pad)},{draw(pad)}".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(spaced(v, draw, twice, tight) for v in value) + "]"
    return json.dumps(value)


@st.composite
def with_a_key_twice(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A llenergymeasure file spaced at random, and the same with one key of one of its objects
    written once more at the object's end."""
    doc = json.loads(json.dumps(draw(st.one_of(_v1, _v2))))
    objects = [doc]
    stack = [doc]
    while stack:
        for v in stack.pop().values():
            if isinstance(v, dict):
                objects.append(v)
                stack.append(v)
    target = draw(st.sampled_from(objects))
    if not target:
        target["k"] = "v"
    key = draw(st.sampled_from(sorted(target)))
    again = draw(st.sampled_from([target[key], None, 0, "x", ":", ":a:"]))
    seed = draw(st.randoms(use_true_random=False))
    state = seed.getstate()
    pads = lambda strategy: seed.choice(["", " ", "  ", "\n", "\t", "\r\n"])  # noqa: E731 - same spacing both times
    tight = draw(st.booleans())
    once = spaced(doc, pads, tight=tight)
    seed.setstate(state)
    return once.encode(), spaced(doc, pads, (target, key, again), tight).encode()


def test_escaped_quotes_and_colons_in_strings_are_taken():
    doc = {**BASE, "error_message": 'KeyError: "a": b\\', "prompt_args": {"q:": ":x:", "n": [":", {"k:": "v"}]}}
    assert assert_sound(json.dumps(doc).encode()) == (StateFormat.LEM_V1, doc)


def test_what_llenergymeasure_writes_is_taken():
    for data in (json.dumps(BASE, indent=2), json.dumps(BASE), json.dumps(BASE, indent=4, sort_keys=True)):
        assert assert_sound(data.encode()) == (StateFormat.LEM_V1, BASE)
    v2 = {"experiment_id": "e", "phase": "measuring", "failed": False, "last_updated": "2025-03-01T12:00:00"}
    assert assert_sound(json.dumps(v2, indent=2).encode()) == (StateFormat.LEM_V2, v2)


@pytest.mark.parametrize("text", [
    '{"experiment_id": "a", "experiment_id": "b", "last_updated": "2025-03-01T12:00:00"}',
    '{"experiment_id" : "a", "experiment_id": "b", "last_updated": "2025-03-01T12:00:00"}',
    '{"experiment_id"\n:"a","experiment_id"\t: "b", "last_updated": "2025-03-01T12:00:00"}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": {"y": 1, "y": 2}}}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "completed_runs": {"r": "1", "r": "2"}}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "error_message": ":x", "error_message" : "y"}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "process_progress": {"0": {"process_index": 0, "odd": 1, "odd": 2}}}',
    '{"experiment_id": "a", "phase": "done", "phase": "done", "last_updated": "2025-03-01T12:00:00"}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "error_message": "x\\": y", "error_message": "z"}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "error_message": "\\u003a", "error_message": "z"}',
])
def test_a_key_named_twice_is_never_taken(text: str):
    assert checked_lem(text.encode()) is None
    with pytest.raises(BrokenStateFile, match="duplicate key"):
        decode_json(text.encode())


@pytest.mark.parametrize("text", [
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": NaN}}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": -Infinity}}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": "\\ud800"}}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": "caf\u00e9"}}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": ' + "[" * 70 + "]" * 70 + "}}",
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "error_message": "bell\x07"}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00"} trailing',
    '{"experiment_id": "a", "last_updated": "2025-03-01 12:00:00"}',
    '{"experiment_id": "a", "status": "running", "cycle_id": true, "last_updated": "2025-03-01T12:00:00"}',
    '{"experiment_id": "a", "total_runs": 9223372036854775808, "last_updated": "2025-03-01T12:00:00"}',
    '{"schema": "expwatch.experiment/1", "experiment_id": "a", "last_updated": "2025-03-01T12:00:00"}',
])
def test_what_the_two_parsers_could_read_apart_goes_the_usual_way(text: str):
    """NaN, infinities, escapes, non-ASCII, deep nesting, control characters, trailing text, odd times
    and types: each is left to ``decode_json`` and the hand checks."""
    assert checked_lem(text.encode("utf-8", "surrogatepass")) is None


@CI
@given(with_a_key_twice())
def test_no_key_named_twice_is_taken_however_spaced(texts: tuple[bytes, bytes]):
    once, twice = texts
    assert checked_lem(twice) is None
    plain = once.isascii() and not re.search(rb'\\|NaN|Infinity|\s:', once)
    if plain:  # the same text, spaced alike, with the key once, as a JSON writer spaces it: taken
        assert checked_lem(once) is not None


@CI
@given(st.one_of(_v1, _v2), st.data())
def test_generated_files_however_spaced_are_sound(doc: dict[str, Any], data: st.DataObject):
    assert_sound(spaced(doc, data.draw).encode())
    assert_sound(json.dumps(doc, indent=2).encode())


@CI
@given(st.one_of(odd_documents(), near_valid_documents(), hostile_bytes))
def test_odd_near_valid_and_hostile_bytes_are_sound(data: bytes):
    assert_sound(data)
