"""``state.lem_bytes.checked_lem`` vouches only for what ``decode_json`` and the hand checks read alike.

Whatever the bytes, a file it accepts decodes to the very value it returned (types
and float signs included), and the hand checks (``scan_read.lem_v1_fields`` and
``lem_v2_fields``) take it with the same process entries in the same order; a file
the hand checks take, inside the domain this path serves, it accepts too: the
same rules both ways. A key named twice (anywhere, however the text is spaced) is
never accepted. jiter itself is held to ``json.loads`` on that domain: whatever it
accepts there decodes to exactly what ``decode_json`` gives.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jiter import from_json

from state.decoding import BrokenStateFile, decode_json, detect_format
from state.lem_bytes import checked_lem
from state.record import StateFormat
from state.scan_read import ISO_TIME_PATTERN, PLAIN_ID_PATTERN, V1_FIELDS, V2_FIELDS, Unsure, lem_v1_fields, lem_v2_fields
from tests.hardening.fuzz_strategies import hostile_bytes, near_valid_documents
from tests.state.test_scan_read import ODD_VALUES, _v1, _v2, odd_documents

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
BASE_PROCESSES = [(0, "completed", None, "2025-03-01T12:00:00", None, "x")]


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values, with the same types (``1`` is not ``1.0`` nor ``True``) and float signs."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def _pattern_time(value: Any) -> Any:
    """A time as the hand checks take it, kept as text (its calendar is checked on conversion)."""
    if value is not None and (type(value) is not str or not re.fullmatch(ISO_TIME_PATTERN, value)):
        raise Unsure
    return value


def hand_checked(data: bytes) -> tuple[StateFormat, Any, list[tuple[Any, ...]]] | None:
    """What ``checked_lem`` must give for ``data`` by the usual decoding and the hand checks."""
    try:
        value = decode_json(data)
        fmt = detect_format(value)
        if fmt is StateFormat.LEM_V1:
            return fmt, value, lem_v1_fields(value, _pattern_time, _pattern_time)[1]
        if fmt is StateFormat.LEM_V2:
            lem_v2_fields(value, _pattern_time)
            return fmt, value, []
    except Exception:  # noqa: BLE001 - whatever the usual way makes of it, this path must not vouch for it
        return None
    return None


def _ints(value: Any) -> Iterator[int]:
    if type(value) is int:
        yield value
    elif type(value) in (dict, list):
        for item in value.values() if type(value) is dict else value:
            yield from _ints(item)


def served(data: bytes, value: Any) -> bool:
    """Inside the domain the jiter path serves: ASCII with no ``\\u`` escape, a plain id, integers within 64 bits."""
    ident = value.get("experiment_id")
    return (
        data.isascii() and b"\\u" not in data and isinstance(ident, str) and re.fullmatch(PLAIN_ID_PATTERN, ident) is not None
        and all(-(2**63) < i < 2**63 for i in _ints(value))
    )


def assert_sound(data: bytes) -> Any:
    """An accepted file decodes to the value returned and the hand checks take it alike; a file they
    take inside the served domain is accepted. Returns the outcome."""
    checked = checked_lem(data)
    expected = hand_checked(data)
    if checked is not None:
        assert expected is not None
        assert checked[0] is expected[0] and same(checked[1], expected[1]) and checked[2] == expected[2]
    elif expected is not None:
        assert not served(data, expected[1])
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
    (at any depth, prompt arguments included) written once more at the object's end."""
    doc = json.loads(json.dumps(draw(st.one_of(_v1, _v2))))
    objects = [doc]
    stack = [doc]
    while stack:
        item = stack.pop()
        for v in item.values() if isinstance(item, dict) else item:
            if isinstance(v, (dict, list)):
                stack.append(v)
                if isinstance(v, dict):
                    objects.append(v)
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


@st.composite
def shuffled_processes(draw: st.DrawFn) -> bytes:
    """A v1 file whose process keys are any plain indices, written in any order ("10" before "2")."""
    doc = draw(_v1)
    entries = list(doc["process_progress"].values())
    keys = draw(st.lists(st.integers(0, 120), min_size=len(entries), max_size=len(entries), unique=True))
    doc["process_progress"] = {str(k): entry for k, entry in zip(keys, entries)}
    return json.dumps(doc, indent=2).encode()


def test_a_files_times_are_checked_in_one_match_and_each_one_whole():
    from state.lem_bytes import _times

    t, u = "2025-03-01T12:00:00", "2025-03-01T12:00:01.250000"
    assert _times([t]) and _times([t, u, t, u])
    for bad in ([t, None], [t, 1], [t + "\0" + u], [t, t + "\0"], ["\0" + t], [t, ""], [t, u + " "], [t, "2025-03-01T12:60:00"]):
        assert not _times(bad), bad


def test_escaped_quotes_and_colons_in_strings_are_taken():
    doc = {**BASE, "error_message": 'KeyError: "a": b\\', "prompt_args": {"q:": ":x:", "n": [":", {"k:": "v"}]}}
    assert assert_sound(json.dumps(doc).encode()) == (StateFormat.LEM_V1, doc, BASE_PROCESSES)


def test_what_llenergymeasure_writes_is_taken():
    for data in (json.dumps(BASE, indent=2), json.dumps(BASE), json.dumps(BASE, indent=4, sort_keys=True)):
        assert assert_sound(data.encode()) == (StateFormat.LEM_V1, BASE, BASE_PROCESSES)
    v2 = {"experiment_id": "e", "phase": "measuring", "failed": False, "last_updated": "2025-03-01T12:00:00"}
    assert assert_sound(json.dumps(v2, indent=2).encode()) == (StateFormat.LEM_V2, v2, [])


def test_processes_come_in_key_order():
    entry = BASE["process_progress"]["0"]
    doc = {**BASE, "process_progress": {"10": {**entry, "process_index": 10}, "2": {**entry, "process_index": 2}}}
    checked = assert_sound(json.dumps(doc).encode())
    assert [p[0] for p in checked[2]] == [2, 10]


@pytest.mark.parametrize("text", [
    '{"experiment_id": "a", "experiment_id": "b", "last_updated": "2025-03-01T12:00:00"}',
    '{"experiment_id" : "a", "experiment_id": "b", "last_updated": "2025-03-01T12:00:00"}',
    '{"experiment_id"\n:"a","experiment_id"\t: "b", "last_updated": "2025-03-01T12:00:00"}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": {"y": 1, "y": 2}}}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": [{"y": [{"z": 1, "z": 1}]}]}}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "completed_runs": {"r": "1", "r": "2"}}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "error_message": ":x", "error_message" : "y"}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "process_progress": {"0": {"process_index": 0, "odd": 1, "odd": 2}}}',
    '{"experiment_id": "a", "phase": "done", "phase": "done", "last_updated": "2025-03-01T12:00:00"}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "error_message": "x\\": y", "error_message": "z"}',
])
def test_a_key_named_twice_is_never_taken(text: str):
    assert checked_lem(text.encode()) is None
    with pytest.raises(BrokenStateFile, match="duplicate key"):
        decode_json(text.encode())


@pytest.mark.parametrize("text", [
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": NaN}}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": -Infinity}}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": "\\ud800"}}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": "\\u0041"}}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": "caf\u00e9"}}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": ' + "[" * 70 + "]" * 70 + "}}",
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": ' + "[" * 63 + "]" * 63 + "}}",
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": 9223372036854775808}}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "process_progress": {"0": {"process_index": 0, "odd": [-9223372036854775808]}}}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "error_message": "bell\x07"}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00"} trailing',
    '{"experiment_id": "a", "last_updated": "2025-03-01 12:00:00"}',
    '{"experiment_id": "a", "status": "running", "cycle_id": true, "last_updated": "2025-03-01T12:00:00"}',
    '{"experiment_id": "a", "total_runs": 9223372036854775808, "last_updated": "2025-03-01T12:00:00"}',
    '{"experiment_id": "a", "completed_runs": null, "last_updated": "2025-03-01T12:00:00"}',
    '{"experiment_id": "a", "process_progress": null, "last_updated": "2025-03-01T12:00:00"}',
    '{"experiment_id": "a", "status": null, "last_updated": "2025-03-01T12:00:00"}',
    '{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "process_progress": {"01": {"process_index": 1}}}',
    '{"experiment_id": "a", "phase": "done", "failed": 0, "last_updated": "2025-03-01T12:00:00"}',
    '{"experiment_id": "a", "phase": null, "last_updated": "2025-03-01T12:00:00"}',
    '{"experiment_id": "../a", "last_updated": "2025-03-01T12:00:00"}',
    '{"schema": "expwatch.experiment/1", "experiment_id": "a", "last_updated": "2025-03-01T12:00:00"}',
])
def test_what_the_two_parsers_or_the_rules_could_read_apart_goes_the_usual_way(text: str):
    """NaN, infinities, ``\\u`` escapes, non-ASCII, deep nesting, integers past 64 bits in free-form
    fields, control characters, trailing text, odd times, types and keys, unsafe ids: each is
    left to ``decode_json`` and the hand checks."""
    data = text.encode("utf-8", "surrogatepass")
    assert checked_lem(data) is None
    assert_sound(data)


def test_nesting_up_to_the_limit_is_taken_and_past_it_goes_the_usual_way():
    def doc(depth: int) -> bytes:  # the file, prompt_args and depth - 2 lists: ``depth`` containers deep
        return ('{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": '
                + "[" * (depth - 2) + "]" * (depth - 2) + "}}").encode()

    assert assert_sound(doc(64)) is not None
    assert checked_lem(doc(65)) is None
    with pytest.raises(BrokenStateFile, match="nested deeper"):
        decode_json(doc(65))


def test_an_infinity_written_as_a_number_reads_as_json_loads_reads_it():
    """``1e400`` is a number to both parsers (infinity), unlike the ``Infinity`` literal."""
    data = b'{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": 1e400, "y": -1e400}}'
    assert assert_sound(data)[1]["prompt_args"] == {"x": math.inf, "y": -math.inf}


def test_a_lower_limit_on_integer_digits_is_obeyed():
    """``json.loads`` refuses an integer longer than the interpreter's digit limit; jiter's own limit is
    Python's default: a long integer in a free-form field always goes the usual way."""
    data = b'{"experiment_id": "a", "last_updated": "2025-03-01T12:00:00", "prompt_args": {"x": ' + b"7" * 700 + b"}}"
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        assert checked_lem(data) is None
        with pytest.raises(ValueError):
            decode_json(data)
    finally:
        sys.set_int_max_str_digits(limit)


@CI
@given(with_a_key_twice())
def test_no_key_named_twice_is_taken_however_spaced(texts: tuple[bytes, bytes]):
    once, twice = texts
    assert checked_lem(twice) is None
    assert_sound(once)  # the same text, spaced alike, with the key once: taken where the hand checks take it


@CI
@given(st.one_of(_v1, _v2), st.data())
def test_generated_files_however_spaced_are_sound(doc: dict[str, Any], data: st.DataObject):
    assert_sound(spaced(doc, data.draw).encode())
    assert_sound(json.dumps(doc, indent=2).encode())


@CI
@given(shuffled_processes())
def test_process_keys_in_any_order_are_sound(data: bytes):
    assert_sound(data)


FULL_V1 = {
    "experiment_id": "exp-1", "status": "running", "cycle_id": 1, "config_path": "c.yaml", "config_hash": "0" * 16,
    "model_name": "m", "prompt_args": {"n": 3}, "num_processes": 1, "subprocess_pid": 42,
    "process_progress": {"0": {"process_index": 0, "status": "running", "gpu_id": 0, "started_at": "2025-03-01T12:00:00",
                               "completed_at": "2025-03-01T12:00:01.000001", "error_message": "e"}},
    "started_at": "2025-03-01T12:00:00", "last_updated": "2025-03-01T12:00:02", "error_message": "e",
    "completed_runs": {"r": "t"}, "failed_runs": {"s": "u"}, "total_runs": 2,
}
FULL_V2 = {"experiment_id": "exp-2", "phase": "measuring", "failed": False, "config_hash": "h", "error_message": "e",
           "started_at": "2025-03-01T12:00:00", "last_updated": "2025-03-01T12:00:02", "subprocess_pid": 42}


@pytest.mark.parametrize("where", [
    *(("v1", key) for key in sorted(V1_FIELDS)),
    *(("process", key) for key in [*sorted(FULL_V1["process_progress"]["0"]), "extra"]),
    *(("v2", key) for key in sorted(V2_FIELDS)),
], ids="-".join)
def test_each_field_set_to_each_odd_value_is_sound(where: tuple[str, str]):
    """Every field of the file and of a process entry, in turn, set to each odd value: each check must bite."""
    kind, key = where
    assert checked_lem(json.dumps(FULL_V2 if kind == "v2" else FULL_V1).encode()) is not None
    for odd in ODD_VALUES:
        doc = json.loads(json.dumps(FULL_V2 if kind == "v2" else FULL_V1))
        (doc["process_progress"]["0"] if kind == "process" else doc)[key] = odd
        assert_sound(json.dumps(doc, indent=2).encode("utf-8", "surrogatepass"))


@CI
@given(st.one_of(odd_documents(), near_valid_documents(), hostile_bytes))
def test_odd_near_valid_and_hostile_bytes_are_sound(data: bytes):
    assert_sound(data)


# -- jiter against json.loads, on the domain this path serves ---------------------------------------
# Mostly JSON, with a little of what is not (a stray form feed, a leading zero, a raw control
# character), so that both the accepted values and the refusals are explored.
_PADS = st.sampled_from(["", "", "", "", " ", " ", "\n", "\n  ", "\t", "\r\n", "\x0c", "\x0b"])
_DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=25)
_well_formed = st.builds(
    lambda sign, whole, frac, exp: f"{sign}{whole}{frac}{exp}",
    st.sampled_from(["", "-"]), st.sampled_from(["0", "1", "9"]) | _DIGITS.map(lambda d: "1" + d),
    st.sampled_from(["", ".0", ".5"]) | _DIGITS.map(lambda d: "." + d),
    st.sampled_from(["", "", "e400", "E+2", "e-400", "e308", "e-324", "E0"])
    | st.builds(lambda e, sign, d: e + sign + d, st.sampled_from("eE"), st.sampled_from(["", "+", "-"]), _DIGITS),
)
_numbers = st.one_of(
    st.integers().map(str),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    _well_formed,
    st.sampled_from(["1e400", "-1e400", "1e-400", "-0", "-0.0", "0e0", "2.2250738585072011e-308", "4.9e-324",
                     "01", "1.", ".5", "-", "+1", "1e", "0x1", "NaN", "Infinity", "-Infinity", "nan", "1_000"]),
    st.integers(4290, 4310).flatmap(lambda n: st.sampled_from(["7" * n, "-" + "7" * n, "7" * n + ".5"])),
)
_ESCAPES = st.sampled_from(["\\n", "\\t", "\\r", "\\b", "\\f", "\\/", '\\"', "\\\\", ":", "\x7f"])
_STRING_PIECES = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7F, exclude_characters='"\\'), max_size=6),
    _ESCAPES,
    _ESCAPES,  # twice: most strings are JSON
    st.sampled_from(["\\x", "\\a", "\\", "\\0", "\x00", "\x1f", "\t", "\n"]),
)
_strings = st.lists(_STRING_PIECES, max_size=4).map(lambda pieces: '"' + "".join(pieces) + '"')
_scalars = st.one_of(_numbers, _strings, st.sampled_from(["true", "false", "null", "True", "nul"]))


def _container(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def write(draw: st.DrawFn) -> str:
        pad = draw(_PADS)
        if draw(st.booleans()):
            items = draw(st.lists(children, max_size=4))
            return "[" + pad + ("," + draw(_PADS)).join(items) + draw(st.sampled_from(["", "", "", ","])) + "]"
        keys = draw(st.lists(st.sampled_from(['"a"', '"b"', '"c:"', '"\\n"', '""']) | _strings, max_size=4))
        pairs = [k + draw(_PADS) + ":" + draw(_PADS) + draw(children) for k in keys]
        return "{" + pad + ("," + draw(_PADS)).join(pairs) + "}"
    return st.composite(write)()


_json_texts = st.recursive(_scalars, _container, max_leaves=12)


@settings(CI, max_examples=1500)
@given(_PADS, _json_texts, _PADS, st.sampled_from(["", "", "", "", "", "x", "{}", "1", "]", ","]))
def test_what_jiter_accepts_on_the_served_domain_json_loads_reads_alike(before: str, body: str, after: str, trailing: str):
    """Numbers (big integers, exponents, signs), escapes other than ``\\u``, whitespace JSON has and
    has not, trailing text, control characters in strings, keys named twice, top-level scalars."""
    data = (before + body + after + trailing).encode()
    if not data.isascii() or b"\\u" in data:
        return
    try:
        value = from_json(data, catch_duplicate_keys=True, allow_inf_nan=False, cache_mode="keys")
    except ValueError:
        return  # refused: the usual way reads it
    assert same(value, decode_json(data))
