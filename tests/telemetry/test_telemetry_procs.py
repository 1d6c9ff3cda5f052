"""ProcessSampler over real child processes."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from runtime.procs import ProcessPoller, ProcessSampler

BUSY = "import time\nx = bytearray(64 * 1024 * 1024)\nend = time.time() + 30\nwhile time.time() < end: pass\n"


@pytest.fixture
def busy_child():
    child = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        deadline = time.monotonic() + 10
        while psutil.Process(child.pid).memory_info().rss < 64 * 1024 * 1024:
            assert time.monotonic() < deadline, "child did not allocate in time"
            time.sleep(0.01)
        yield child
    finally:
        child.kill()
        child.wait(timeout=10)


def test_rss_and_cpu_of_a_real_child_and_reused_objects(busy_child):
    sampler = ProcessSampler()
    first = sampler.sample([busy_child.pid])[busy_child.pid]
    assert first.alive and first.cpu_percent is None  # the first call only primes
    assert first.rss_bytes >= 64 * 1024 * 1024
    kept = sampler.process(busy_child.pid)
    deadline = time.monotonic() + 10
    while True:
        second = sampler.sample([busy_child.pid])[busy_child.pid]
        assert second.cpu_percent is not None
        if second.cpu_percent > 10.0:
            break
        assert time.monotonic() < deadline, "a busy child never showed CPU use"
        time.sleep(0.05)
    assert sampler.process(busy_child.pid) is kept
    assert sampler.start_times([busy_child.pid]) == {busy_child.pid: psutil.Process(busy_child.pid).create_time()}


def test_a_dead_pid_is_reported_not_alive():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=10)
    sampler = ProcessSampler()
    usage = sampler.sample([child.pid])[child.pid]
    assert usage.alive is False and usage.rss_bytes is None
    assert sampler.start_times([child.pid]) == {}


def test_a_process_that_dies_between_polls(busy_child):
    sampler = ProcessSampler()
    assert sampler.sample([busy_child.pid])[busy_child.pid].alive
    busy_child.kill()
    busy_child.wait(timeout=10)
    assert sampler.sample([busy_child.pid])[busy_child.pid].alive is False
    assert sampler.process(busy_child.pid) is None


def test_a_reused_pid_gets_a_new_process_object():
    sampler = ProcessSampler()
    me = psutil.Process()
    sampler.sample([me.pid])
    kept = sampler.process(me.pid)
    # A kept object whose identity no longer matches the live pid is replaced.
    kept._create_time = kept.create_time() - 100.0
    kept._ident = (kept.pid, kept._create_time)
    sampler.sample([me.pid])
    assert sampler.process(me.pid) is not kept


def test_pids_no_longer_asked_for_are_forgotten():
    sampler = ProcessSampler()
    sampler.sample([psutil.Process().pid])
    sampler.sample([])
    assert sampler._procs == {}


def test_poller_runs_on_a_thread_and_stops():
    import os

    seen = []
    poller = ProcessPoller(lambda: [os.getpid()], interval=0.01, on_sample=seen.append).start()
    deadline = time.monotonic() + 5
    while len(seen) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert poller.stop(timeout=2.0)
    assert poller.latest()[os.getpid()].cpu_percent is not None
