"""Hypothesis strategies for hostile state files, shared by the CI fuzz test and benchmarks/fuzz_state.py.

Three shapes: arbitrary bytes; arbitrary JSON; and near-valid experiments
(a valid v1, v2 or expwatch document with fields dropped, retyped, renamed,
added, or its text cut or flipped), which reach the validators rather than
stopping at the JSON decoder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from state.detect import BrokenStateFile, NotAnExperiment, parse_state, summarize
from state.record import FileVersion

ALLOWED = (BrokenStateFile, NotAnExperiment)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=12), inner, max_size=4),
    ),
    max_leaves=20,
)

_TIMES = st.one_of(
    st.sampled_from(["2025-03-01T12:00:00", "2025-03-01T12:00:00.123456", "2025-03-01T12:00:00+02:00",
                     "2025-02-30T00:00:00", "9999-12-31T23:59:59", "0001-01-01T00:00:00", "yesterday", ""]),
    st.integers(min_value=-(2**40), max_value=2**40),
)
_STATUS = st.sampled_from(["initialised", "running", "completed", "aggregated", "failed", "interrupted",
                           "RUNNING", "stale", "", "pending"])
_IDS = st.one_of(
    st.sampled_from(["exp-1", "../x", "/etc/passwd", ".", "..", "a/b", "x" * 300, "\x00", "é-ü", ""]),
    st.text(max_size=30),
)


def _v1() -> st.SearchStrategy[dict[str, Any]]:
    process = st.fixed_dictionaries(
        {"process_index": st.integers(-2, 8), "status": st.sampled_from(["pending", "running", "completed", "failed", "x"])},
        optional={"gpu_id": st.one_of(st.none(), st.integers(-1, 8)), "started_at": _TIMES,
                  "completed_at": _TIMES, "error_message": st.one_of(st.none(), st.text(max_size=10))},
    )
    return st.fixed_dictionaries(
        {"experiment_id": _IDS, "last_updated": _TIMES},
        optional={
            "status": _STATUS, "cycle_id": st.integers(), "config_path": st.one_of(st.none(), st.text(max_size=10)),
            "config_hash": st.one_of(st.none(), st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)),
            "model_name": st.one_of(st.none(), st.text(max_size=10)),
            "prompt_args": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
            "num_processes": st.integers(-1, 64), "subprocess_pid": st.one_of(st.none(), st.integers(-5, 2**31)),
            "process_progress": st.dictionaries(st.sampled_from(["0", "1", "2", "x", "-1"]), process, max_size=3),
            "started_at": _TIMES, "error_message": st.one_of(st.none(), st.text(max_size=10)),
            "completed_runs": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
            "failed_runs": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
            "total_runs": st.integers(-1, 10**6),
        },
    )


def _v2() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"experiment_id": _IDS, "phase": st.sampled_from(["initialising", "measuring", "done", "x"])},
        optional={"failed": st.one_of(st.booleans(), st.integers(0, 2), st.text(max_size=3)),
                  "config_hash": st.one_of(st.none(), st.text(max_size=16)),
                  "error_message": st.one_of(st.none(), st.text(max_size=10)),
                  "started_at": _TIMES, "last_updated": _TIMES,
                  "subprocess_pid": st.one_of(st.none(), st.integers(-5, 2**31))},
    )


def _native() -> st.SearchStrategy[dict[str, Any]]:
    owner = st.fixed_dictionaries(
        {"host": st.text(max_size=8), "pid": st.integers(-1, 2**31)},
        optional={"boot_id": st.one_of(st.none(), st.text(max_size=8)), "start_time": st.floats(allow_nan=False, allow_infinity=False),
                  "start_ticks": st.integers(0, 2**40), "role": st.text(max_size=8)},
    )
    run = st.fixed_dictionaries(
        {"id_run": st.text(max_size=6), "index": st.integers(-1, 100)},
        optional={"status": st.sampled_from(["pending", "running", "completed", "failed", "x"]),
                  "params": st.dictionaries(st.text(max_size=4), json_values, max_size=2),
                  "exception": st.one_of(st.none(), st.fixed_dictionaries({"type": st.text(max_size=5), "message": st.text(max_size=5)}))},
    )
    return st.fixed_dictionaries(
        {"schema": st.sampled_from(["expwatch.experiment/1", "expwatch.experiment/0", "expwatch.experiment/2",
                                    "expwatch.experiment/x", "expwatch.devices/1", "other/1", ""]),
         "experiment_id": _IDS, "last_updated": _TIMES},
        optional={"status": _STATUS, "attempt": st.integers(-1, 10), "owner": st.one_of(st.none(), owner),
                  "heartbeat_at": _TIMES, "heartbeat_interval_s": st.floats(allow_nan=False, allow_infinity=False),
                  "runs": st.lists(run, max_size=4), "config": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
                  "processes": st.dictionaries(st.sampled_from(["0", "1"]), st.fixed_dictionaries({"process_index": st.integers(0, 3)}), max_size=2),
                  "energy": st.one_of(st.none(), st.fixed_dictionaries({"start_mj": st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
                                                                         "latest_mj": st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)}))},
    )


@st.composite
def near_valid_documents(draw: st.DrawFn) -> bytes:
    """A plausible experiment, then one or two mutations of its structure or its text."""
    doc: dict[str, Any] = draw(st.one_of(_v1(), _v2(), _native()))
    for _ in range(draw(st.integers(0, 2))):
        action = draw(st.sampled_from(["drop", "retype", "extra", "none"]))
        keys = sorted(doc)
        if action == "drop" and keys:
            doc.pop(draw(st.sampled_from(keys)))
        elif action == "retype" and keys:
            doc[draw(st.sampled_from(keys))] = draw(json_values)
        elif action == "extra":
            doc[draw(st.text(max_size=10))] = draw(json_values)
    text = json.dumps(doc, indent=draw(st.sampled_from([None, 2])))
    data = text.encode("utf-8", "surrogatepass")
    cut = draw(st.sampled_from(["whole", "whole", "whole", "truncate", "flip", "prefix"]))
    if cut == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif cut == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
    elif cut == "prefix":
        data = draw(st.sampled_from([b"\xef\xbb\xbf", b"\x00", b" \n", b"//", b"NaN"])) + data
    return data


any_json_bytes = json_values.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass"))
hostile_bytes = st.one_of(st.binary(max_size=512), any_json_bytes, near_valid_documents())


def check_parse(data: bytes) -> str:
    """Parse ``data``; only the two documented exceptions may escape; a valid model must summarize."""
    try:
        fmt, model = parse_state(data)
        summarize("k", Path("k.json"), FileVersion(1, 1, len(data)), fmt, model)
    except ALLOWED as exc:
        return type(exc).__name__
    return fmt.value
