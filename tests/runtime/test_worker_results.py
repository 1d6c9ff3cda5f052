"""A worker's result lines: the formatted fast path for completed runs is the general encoding, byte for byte."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from runtime.runner.study import FrozenAttrDict, Run
from runtime.runner.worker import MAX_RESULT_BYTES, Worker


@pytest.fixture
def worker():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        yield Worker(ours, study_path="study.py", process_index=0, gpu_id=None, flush_s=1.0, heartbeat_s=1.0)


def finished(fields: dict[str, Any], state: dict[str, Any]) -> Run:
    run = Run(id_run="0042", index=42, params={"i": 42}, config=FrozenAttrDict())
    run.fields.update(fields)
    run.state.update(state)
    return run


@pytest.mark.parametrize(("fields", "state"), [
    ({"x": 0.5}, {}),
    ({}, {}),
    ({}, {"checkpoint": "c.pt"}),
    ({"text": "é \u2028 \"quoted\"", "nested": {"a": [1, 2.5, None, True]}, "big": 10**30}, {"n": 3}),
])
def test_a_completed_run_s_line_is_the_general_encoding_without_its_empty_keys(worker, fields, state) -> None:
    line = worker._completed_result(42, "0042", finished(fields, state), 1796150000.25)
    decoded = json.loads(line)
    general = Worker._encode_result(Worker._result(42, "0042", finished(fields, state), "completed", None,
                                                   1796150000.25, decoded["t1"]))
    assert line == general
    assert ("f" in decoded) == bool(fields) and ("st" in decoded) == bool(state)
    assert not {"e", "step"} & decoded.keys()


def test_what_the_fast_path_cannot_store_fails_the_run_saying_why(worker) -> None:
    decoded = json.loads(worker._completed_result(7, "0007", finished({"x": float("nan")}, {}), 1.0))
    assert decoded["s"] == "failed" and "f" not in decoded and "NaN" in decoded["e"]["message"]
    huge = json.loads(worker._completed_result(7, "0007", finished({"x": "a" * MAX_RESULT_BYTES}, {}), 1.0))
    assert huge["s"] == "failed" and "MiB" in huge["e"]["message"]
