"""``run.shared`` kept in a real redis-server: real runners with ``--hub``, the hash's scripts, ``expwatch kv``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from state.hub.schema import Hub
from state.hub.shared import HubSharedState, SharedRefused, hosts_with_shared
from state.native import RunStatus
from state.shared import shared_path
from state.transitions import ExperimentStatus
from tests.hub.redis_server import RedisServer
from tests.runtime.helpers import expwatch, read_doc, start_expwatch, wait_for, write_study
from tests.runtime.test_shared_state import COUNTING_STUDY, NON_JSON_STUDY

#: Every JSON type written by one step and read back by it and by the next run (another worker).
ROUND_TRIP_STUDY = '''\
VALUES = {
    "none": None, "yes": True, "no": False, "zero": 0, "big": 2**62 + 1, "negative": -7,
    "tenth": 0.1, "huge": 1e300, "tiny": -5e-324, "text": "héllo ✓ \\u0000 end", "empty": "",
    "list": [1, "two", None, [3.5, {"k": False}]], "dict": {"a": {"b": [None]}, "é": 1}, "nothing": [], "blank": {},
}

def write(run):
    if run.index == 0:
        for key, value in VALUES.items():
            run.shared[key] = value
        run.shared.incr("sum", 2)
        run.shared.incr("sum", 0.5)
        run.shared.incr("fsum", 0.1)
        run.shared.incr("fsum", 0.2)
        run.shared.incr("ints", 2**62)
        run.shared.incr("ints", 2**62 - 1)

def read(run):
    if run.index == 1:
        import time
        deadline = time.monotonic() + 30
        while "ints" not in run.shared and time.monotonic() < deadline:
            time.sleep(0.01)
    for key, value in VALUES.items():
        got = run.shared[key]
        assert got == value and type(got) is type(value), (key, got, value)
    assert run.shared.sum == 2.5 and run.shared.fsum == 0.1 + 0.2 and run.shared.ints == 2**63 - 1
    assert type(run.shared.ints) is int
    run.fields.checked = sorted(run.shared.keys())

steps = [write, read]
grid = {"i": range(2)}
'''

#: The file mode's study, plus a run that adds to a string.
BAD_VALUES_STUDY = NON_JSON_STUDY.replace(
    "    run.fields.stored = True",
    "    if run.params.i == 2:\n        run.shared.word = \"five\"\n        run.shared.incr(\"word\")\n    run.fields.stored = True",
)

#: Run 0 counts once, then waits for the test (which kills the hub meanwhile) and counts again.
LOST_HUB_STUDY = '''\
import time
from pathlib import Path

def count(run):
    run.shared.incr("before")
    flag = Path(__file__).with_name("go")
    deadline = time.monotonic() + 60
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    run.shared.incr("after")

steps = [count]
grid = {"i": range(1)}
'''


def _run(tmp_path: Path, state_dir: Path, redis_server: RedisServer, study: str, ident: str, *more: str):
    path = write_study(tmp_path, study)
    return expwatch("run", path, "--state-dir", state_dir, "--id", ident, "--hub", redis_server.url,
                    "--host-name", "gpu1", *more, cwd=tmp_path, timeout=180)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


def test_eight_workers_counting_through_the_hub_lose_no_update(tmp_path, state_dir, redis_server):
    done = _run(tmp_path, state_dir, redis_server, COUNTING_STUDY, "count", "-p", "8")
    assert done.returncode == 0, done.stderr + done.stdout
    stored = redis_server.client().hgetall("expwatch:kv:gpu1:count")
    assert stored[b"hits"] == b"8000"
    assert not shared_path(state_dir, "count").exists(), "the map lives in the hub only, never also in a file"
    shown = expwatch("kv", "count", "--source", redis_server.url)
    assert shown.returncode == 0 and shown.stdout == "hits  8000\n", shown.stderr
    doc = read_doc(state_dir, "count")
    assert doc is not None and "--hub" in doc.resume.argv and "gpu1" in doc.resume.argv
    # Asked of the state directory, kv points at the hub the runner used.
    local = expwatch("kv", "count", "--state-dir", state_dir)
    assert local.returncode == 0 and local.stdout == "count: no shared run state\n"
    assert local.stderr == f"expwatch kv: count keeps its shared run state in a hub: expwatch kv count --hub {redis_server.url}\n"


def test_every_json_type_round_trips_exactly(tmp_path, state_dir, redis_server):
    done = _run(tmp_path, state_dir, redis_server, ROUND_TRIP_STUDY, "types", "-p", "2")
    assert done.returncode == 0, done.stderr + done.stdout
    doc = read_doc(state_dir, "types")
    assert doc is not None and all(r.status is RunStatus.COMPLETED for r in doc.runs), [r.exception for r in doc.runs]
    as_json = json.loads(expwatch("kv", "types", "--json", "--hub", redis_server.url).stdout)
    assert as_json["big"] == 2**62 + 1 and as_json["tenth"] == 0.1 and as_json["fsum"] == 0.1 + 0.2
    assert as_json["text"] == "héllo ✓ \x00 end" and as_json["list"][3] == [3.5, {"k": False}]
    one = expwatch("kv", "types", "text", "--hub", redis_server.url)
    assert one.stdout == "héllo ✓ \\x00 end\n", "control characters reach the terminal escaped"
    assert expwatch("kv", "types", "ints", "--json", "--hub", redis_server.url).stdout == f"{2**63 - 1}\n"


def test_a_non_json_value_or_adding_to_a_string_fails_the_step(tmp_path, state_dir, redis_server):
    done = _run(tmp_path, state_dir, redis_server, BAD_VALUES_STUDY, "bad")
    assert done.returncode == 1
    doc = read_doc(state_dir, "bad")
    assert doc is not None
    assert [r.status for r in doc.runs] == [RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.FAILED]
    first, second = doc.runs[1].exception, doc.runs[2].exception
    assert first is not None and first.type == "SharedValueError"
    assert first.message.startswith("run.shared['bad']['when'] is a set, not a JSON value")
    assert second is not None and second.type == "SharedStateUnavailable"
    assert second.message == "run.shared: incr('word'): the value there is not a number"
    client = redis_server.client()
    assert client.hget("expwatch:kv:gpu1:bad", "word") == b'"five"' and client.hget("expwatch:kv:gpu1:bad", "bad") is None


def test_a_hub_down_at_start_is_one_line_and_nothing_runs(tmp_path, state_dir, redis_server):
    redis_server.stop()
    marker = tmp_path / "ran"
    study = COUNTING_STUDY.replace("def count(run):", f"def count(run):\n    open({str(marker)!r}, 'w').close()")
    done = _run(tmp_path, state_dir, redis_server, study, "down")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "connection refused" in done.stderr, done.stderr
    assert not marker.exists() and not list(state_dir.glob("*.json")), "nothing may be created or run"


def test_a_hub_lost_mid_study_fails_the_step_never_falls_back_to_a_file(tmp_path, state_dir, redis_server):
    study = write_study(tmp_path, LOST_HUB_STUDY)
    runner = start_expwatch("run", study, "--state-dir", state_dir, "--id", "lost", "--hub", redis_server.url,
                            "--host-name", "gpu1", cwd=tmp_path)
    client = redis_server.client()
    wait_for(lambda: client.hget("expwatch:kv:gpu1:lost", "before") == b"1", timeout=60)
    redis_server.kill()
    (study.parent / "go").touch()
    assert runner.wait(timeout=120) == 1
    doc = read_doc(state_dir, "lost")
    assert doc is not None and doc.status is ExperimentStatus.FAILED
    error = doc.runs[0].exception
    assert error is not None and error.type == "SharedStateUnavailable"
    assert error.message.startswith("run.shared: shared run state unavailable: hub redis://127.0.0.1:")
    assert not shared_path(state_dir, "lost").exists()


def test_kv_shows_hostile_values_escaped_and_keeps_the_good_ones(redis_server):
    client = redis_server.client()
    key = "expwatch:kv:gpu1:evil"
    client.hset(key, mapping={
        "ok": '"fine"',
        "broken": "{not json",
        "nan": "NaN",
        "inf": "[1, -1e999]",
        "bytes": b"\xff\xfe",
        "esc\x1b[31mkey": '"red\\u001b[31m"',
        "huge": "1" * (5 << 20),
    })
    shown = expwatch("kv", "evil", "--source", redis_server.url)
    assert shown.returncode == 1
    assert "\x1b" not in shown.stdout + shown.stderr
    assert [line.split() for line in shown.stdout.splitlines()] == [["esc\\x1b[31mkey", "red\\x1b[31m"], ["ok", "fine"]]
    errors = shown.stderr.splitlines()
    assert any("'broken' is not valid JSON" in line for line in errors)
    assert any("'nan' is not valid JSON (NaN is not a JSON number)" in line for line in errors)
    assert any("'inf' is not valid JSON (-1e999 is out of a float's range)" in line for line in errors)
    assert any("'bytes' is not UTF-8 text" in line for line in errors)
    assert any("'huge' is 5,242,880 bytes, over the" in line for line in errors)
    assert len(errors) == 5
    assert json.loads(expwatch("kv", "evil", "--json", "--source", redis_server.url).stdout) == {
        "ok": "fine", "esc\x1b[31mkey": "red\x1b[31m"}
    one = expwatch("kv", "evil", "broken", "--source", redis_server.url)
    assert one.returncode == 1 and one.stderr.count("\n") == 1 and "is not valid JSON" in one.stderr
    missing = expwatch("kv", "evil", "nope", "--source", redis_server.url)
    assert missing.returncode == 3 and "evil on gpu1 has no shared key 'nope' (keys: esc\\x1b[31mkey, ok)" in missing.stderr
    absent = expwatch("kv", "nobody", "--source", redis_server.url)
    assert absent.returncode == 3 and "no shared run state of nobody in the hub" in absent.stderr


def test_an_id_used_on_two_hosts_needs_host(redis_server):
    hub = Hub(redis_server.url)
    HubSharedState(hub, "gpu1", "exp:1*").set("n", 1)
    HubSharedState(hub, "gpu2", "exp:1*").set("n", 2)
    HubSharedState(hub, "gpu3", "exp:1x").set("n", 3)  # a glob character in the id matches only itself
    assert hosts_with_shared(hub, "exp:1*") == ["gpu1", "gpu2"]
    both = expwatch("kv", "exp:1*", "--hub", redis_server.url)
    assert both.returncode == 2 and "several hosts: gpu1, gpu2: pick one with --host NAME" in both.stderr
    picked = expwatch("kv", "exp:1*", "n", "--hub", redis_server.url, "--host", "gpu2")
    assert picked.returncode == 0 and picked.stdout == "2\n"


def test_the_scripts_keep_the_size_limit_and_exact_numbers(redis_server):
    hub = Hub(redis_server.url)
    small = HubSharedState(hub, "gpu1", "limits", limit=100)
    small.set("a", "x" * 50)
    with pytest.raises(SharedRefused, match="over its 100-byte limit"):
        small.set("b", "y" * 50)
    small.set("a", "z" * 80)  # replacing a value counts the new size only
    assert small.delete("a") and not small.delete("a")
    assert not redis_server.client().exists(hub.shared_key("gpu1", "limits")), "an empty map leaves no hash behind"

    state = HubSharedState(hub, "gpu1", "numbers")
    state.set("max", 2**63 - 2)
    assert state.incr("max", 1) == 2**63 - 1
    with pytest.raises(SharedRefused, match="outside the 64-bit integers"):
        state.incr("max", 1)
    assert state.values("max") == {"max": 2**63 - 1}, "a refused incr changes nothing"
    assert state.incr("f", 1e308) == 1e308
    with pytest.raises(SharedRefused, match="not finite"):
        state.incr("f", 1e308)
    assert state.incr("i", 3) == 3 and type(state.incr("i", 0.0)) is float
    state.set("flag", True)
    with pytest.raises(SharedRefused, match="not a number"):
        state.incr("flag", 1)


FAIL_ONCE_STUDY = '''\
from pathlib import Path

def count(run):
    run.shared.incr("hits")
    marker = Path(__file__).with_name("failed-once")
    if run.index == 1 and not marker.exists():
        marker.touch()
        raise RuntimeError("first attempt")

steps = [count]
grid = {"i": range(3)}
'''


def test_a_resumed_runner_keeps_counting_in_the_same_hash(tmp_path, state_dir, redis_server):
    from runtime.actions import resume_experiment
    from runtime.liveness import identity_of
    from state.store import StateStore
    from tests.runtime.helpers import terminate_all
    from tests.runtime.test_resume import wait_finished

    done = _run(tmp_path, state_dir, redis_server, FAIL_ONCE_STUDY, "again")
    assert done.returncode == 1
    client = redis_server.client()
    assert client.hget("expwatch:kv:gpu1:again", "hits") == b"3"
    result = resume_experiment(StateStore(state_dir), "again", retry_failed=True)
    try:
        doc = wait_finished(state_dir, "again", result)
    finally:
        terminate_all([identity_of(result.pid)])
    assert doc.status is ExperimentStatus.COMPLETED
    assert client.hget("expwatch:kv:gpu1:again", "hits") == b"4"
    assert not shared_path(state_dir, "again").exists()


def test_a_resume_command_never_records_a_hub_password():
    from runtime.runner.args import HUB_FROM_ENV, ResumeArgs, hub_for_resume

    assert hub_for_resume("redis://hub:6379/0?prefix=lab") == "redis://hub:6379/0?prefix=lab"
    assert hub_for_resume("rediss://:s3cret@hub:6380/0") == HUB_FROM_ENV
    assert hub_for_resume("redis://hub/0?password=s3cret") == HUB_FROM_ENV
    argv = ResumeArgs("e", Path("/tmp"), hub=HUB_FROM_ENV, host_name="gpu1").to_argv()
    assert "s3cret" not in " ".join(argv)
    parsed = ResumeArgs.from_command(argv)
    assert parsed is not None and (parsed[0].hub, parsed[0].host_name) == (HUB_FROM_ENV, "gpu1")
