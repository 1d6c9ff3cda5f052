"""Fuzzing format detection and parsing: only BrokenStateFile or NotAnExperiment ever escape.

Bounded for CI (a few hundred examples, a per-example deadline); the long
run is ``benchmarks/fuzz_state.py --seconds N``.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings

from tests.hardening.fuzz_strategies import any_json_bytes, check_parse, hostile_bytes, near_valid_documents

CI = settings(
    max_examples=300,
    deadline=timedelta(milliseconds=1000),
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
    derandomize=True,
)


@CI
@given(hostile_bytes)
def test_arbitrary_bytes(data: bytes) -> None:
    check_parse(data)


@CI
@given(any_json_bytes)
def test_arbitrary_json(data: bytes) -> None:
    check_parse(data)


@CI
@given(near_valid_documents())
def test_near_valid_documents(data: bytes) -> None:
    check_parse(data)


def test_near_valid_generator_reaches_the_validators() -> None:
    """The structured strategy must produce valid experiments too, or it only tests the JSON decoder."""
    from hypothesis import find

    for wanted in ("llenergymeasure-v1", "llenergymeasure-v2", "expwatch-1", "BrokenStateFile", "NotAnExperiment"):
        find(near_valid_documents(), lambda d, w=wanted: check_parse(d) == w,
             settings=settings(max_examples=2000, database=None, deadline=None))
