"""The energy an experiment used, across attempts: what a resume carries and what it must not count."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import runtime.gpu.factory
from runtime.runner.energy import EnergyMeter
from state.native import EnergyInfo


class CounterSource:
    """GPU energy counters set by the test, as NVML's total-energy counters would read."""

    simulated = False

    def __init__(self, counters: dict[int, int]) -> None:
        self.counters = dict(counters)
        self.closed = False

    def read_energy_mj(self, gpu_ids: Iterable[int]) -> dict[int, int]:
        return {i: self.counters[i] for i in gpu_ids if i in self.counters}

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch) -> CounterSource:
    source = CounterSource({})
    monkeypatch.setattr(runtime.gpu.factory, "make_gpu_source", lambda: source)
    return source


def _attempt(previous: EnergyInfo | None, wanted: list[int]) -> tuple[EnergyMeter, EnergyInfo]:
    opened = EnergyMeter.open(wanted, previous, lambda line: None)
    assert opened is not None
    return opened


def test_a_first_attempt_counts_from_its_start(gpus: CounterSource):
    gpus.counters = {0: 50_000, 1: 70_000}
    meter, info = _attempt(None, [0, 1])
    assert info.used_joules == 0.0 and info.gpu_ids == [0, 1]
    gpus.counters = {0: 53_000, 1: 71_500}
    meter.refresh(info)
    assert info.used_joules == 4.5


def test_a_resume_carries_what_was_used_and_not_the_hours_between(gpus: CounterSource):
    gpus.counters = {0: 1_000_000}
    meter, info = _attempt(None, [0])
    gpus.counters = {0: 1_300_000}
    meter.refresh(info)
    assert info.used_joules == 300.0
    # Killed; the GPU then idles (or serves others) for an hour: 216 kJ the experiment never used.
    gpus.counters = {0: 1_300_000 + 60 * 3600 * 1000}
    meter, info = _attempt(EnergyInfo.model_validate(info.model_dump(mode="json")), [0])
    assert info.used_joules == 300.0
    gpus.counters[0] += 200_000
    meter.refresh(info)
    assert info.used_joules == 500.0


def test_a_counter_reset_between_attempts_loses_nothing(gpus: CounterSource):
    gpus.counters = {0: 9_000_000}
    meter, info = _attempt(None, [0])
    gpus.counters = {0: 9_400_000}
    meter.refresh(info)
    gpus.counters = {0: 1_000}  # the host rebooted: the counter starts again near zero
    meter, info = _attempt(info, [0])
    gpus.counters = {0: 101_000}
    meter.refresh(info)
    assert info.used_joules == 500.0


def test_a_resume_on_other_gpus_keeps_the_first_gpus_energy(gpus: CounterSource):
    gpus.counters = {0: 10_000, 1: 10_000, 2: 5_000}
    meter, info = _attempt(None, [0, 1])
    gpus.counters = {0: 20_000, 1: 15_000, 2: 5_000}
    meter.refresh(info)
    assert info.used_joules == 15.0
    meter, info = _attempt(info, [2])
    assert info.gpu_ids == [0, 1, 2] and info.used_joules == 15.0
    gpus.counters = {0: 99_000, 1: 99_000, 2: 8_000}  # GPUs 0 and 1 now serve someone else
    meter.refresh(info)
    assert info.used_joules == 18.0
    assert info.latest_mj["0"] - info.start_mj["0"] == 10_000


def test_a_failed_read_keeps_the_last_sample(gpus: CounterSource):
    gpus.counters = {0: 10_000}
    meter, info = _attempt(None, [0])
    gpus.counters = {0: 12_000}
    meter.refresh(info)
    gpus.counters = {}  # the GPU fell off the bus
    meter.refresh(info)
    assert info.used_joules == 2.0


@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**40),  # the counter when the attempt starts: anything, a reboot may reset it
            st.lists(st.integers(0, 10**9), max_size=4),  # what it then counts between samples
            st.sets(st.integers(0, 3), min_size=1),  # the GPUs the attempt uses
        ),
        min_size=1,
        max_size=5,
    )
)
def test_what_is_shown_is_the_sum_of_what_each_attempt_counted(attempts: list[tuple[int, list[int], set[int]]]):
    source = CounterSource({})
    info: EnergyInfo | None = None
    counted = 0
    for base, steps, wanted in attempts:
        source.counters = {g: base + g for g in range(4)}
        opened = _open_with(source, wanted, info)
        meter, info = opened
        for step in steps:
            for g in wanted:
                source.counters[g] += step
            meter.refresh(info)
            counted += step * len(wanted)
        info = EnergyInfo.model_validate(info.model_dump(mode="json"))  # as the state file keeps it
    assert info is not None
    assert info.used_joules == counted / 1000.0


def _open_with(source: CounterSource, wanted: set[int], previous: EnergyInfo | None) -> tuple[EnergyMeter, EnergyInfo]:
    saved = runtime.gpu.factory.make_gpu_source
    runtime.gpu.factory.make_gpu_source = lambda: source  # type: ignore[assignment]
    try:
        return _attempt(previous, sorted(wanted))
    finally:
        runtime.gpu.factory.make_gpu_source = saved
