"""One agent per host name, and what a killed agent left pending: real agents, a real redis-server."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from runtime.exit_codes import EXIT_CONFLICT
from runtime.lease_holder import judge_holder, parse_holder, this_holder
from runtime.liveness import probe
from state.hub.actions import GROUP, ActionAnswer, ActionRequest, HubActions, decode_answer, encode, new_id
from state.hub.schema import Hub
from tests.dashboard.conftest import DEAD_PID, native_doc, write_raw
from tests.hub.fleet import finished_experiment, start_agent
from tests.hub.redis_server import RedisServer
from tests.runtime.helpers import expwatch, journal, wait_for

pytestmark = pytest.mark.slow

#: A lease long enough that an agent serving within it can only have taken the old one over.
LONG_LEASE_S = 60


def _lease(server: RedisServer, host: str) -> dict | None:
    raw = server.client().get(HubActions(Hub(server.url)).hub.lease_key(host))
    return json.loads(raw) if raw else None


def test_a_second_agent_for_a_live_host_name_is_refused(redis_server: RedisServer, processes: list[subprocess.Popen], tmp_path: Path):
    first = start_agent(redis_server.url, tmp_path, "gpu7", tmp_path / "first.log", "--no-gpus", lease=2.0)
    processes.append(first)
    wait_for(lambda: (_lease(redis_server, "gpu7") or {}).get("pid") == first.pid, 30, "the first agent's lease")

    second = expwatch("agent", tmp_path, "--hub", redis_server.url, "--host-name", "gpu7", "--no-gpus", "--lease", "2")
    assert second.returncode == EXIT_CONFLICT
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert "gpu7 already has a live agent" in lines[0] and f"pid {first.pid} on {socket.gethostname()}" in lines[0]
    assert f"pid {first.pid} is running (its start time is the lease's)" in lines[0], "it says why the lease is not taken over"
    assert first.poll() is None and _lease(redis_server, "gpu7")["pid"] == first.pid, "the live agent keeps its lease"

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    wait_for(lambda: _lease(redis_server, "gpu7") is None, 20, "the killed agent's lease to expire")
    third = start_agent(redis_server.url, tmp_path, "gpu7", tmp_path / "third.log", "--no-gpus", lease=2.0)
    processes.append(third)
    wait_for(lambda: (_lease(redis_server, "gpu7") or {}).get("pid") == third.pid, 30, "the new agent's lease, once the old one expired")
    assert third.poll() is None


def test_requests_a_killed_agent_left_pending_are_answered_once(redis_server: RedisServer, processes: list[subprocess.Popen], tmp_path: Path):
    remote = tmp_path / "remote"
    remote.mkdir()
    write_raw(remote, native_doc("orphan", "running", pid=DEAD_PID))
    first = start_agent(redis_server.url, remote, "gpu7", tmp_path / "first.log", "--no-gpus", lease=1.5)
    processes.append(first)
    actions = HubActions(Hub(redis_server.url))
    wait_for(lambda: _lease(redis_server, "gpu7") is not None, 30, "the first agent's lease")
    planned = actions.ask("gpu7", ActionRequest(new_id(), "mark_stale", "plan", "remote", "orphan", actions.now_ms() + 10_000), 10)
    assert planned is not None and planned.ok and planned.plan_id

    first.send_signal(signal.SIGKILL)  # as if it died holding these requests, read and unanswered:
    first.wait(timeout=10)
    wait_for(lambda: _lease(redis_server, "gpu7") is None, 20, "the killed agent's lease to expire")
    client = redis_server.client()
    stream = actions.stream_key("gpu7")
    record_key = actions.hub.record_key("gpu7", "remote", "orphan")
    later = actions.now_ms() + 60_000

    def request(mode: str, deadline_ms: int, plan_id: str | None = None) -> ActionRequest:
        sent = ActionRequest(new_id(), "mark_stale", mode, "remote", "orphan", deadline_ms, plan_id)
        client.xadd(stream, {"r": encode(sent)})
        return sent

    answered = request("execute", later, planned.plan_id)  # done, and answered on its record, before the agent died
    client.hset(record_key, "answer", encode(ActionAnswer(answered.id, True, "done before")))
    execute = request("execute", later, planned.plan_id)
    expired = request("plan", actions.now_ms() - 1)
    begun = request("execute", later, planned.plan_id)
    client.set(actions.begun_key(begun.id), b"1")
    moved = request("execute", later, planned.plan_id)  # the same plan again, after the file moved on
    assert len(client.xreadgroup(GROUP, "gpu7-dead", {stream: ">"})[0][1]) == 5

    processes.append(start_agent(redis_server.url, remote, "gpu7", tmp_path / "second.log", "--no-gpus", lease=1.5))

    def answer_to(sent: ActionRequest) -> ActionAnswer | None:
        raw = client.lindex(actions.answer_key(sent.id), 0)
        return decode_answer(raw, sent.id) if raw else None

    wait_for(lambda: all(answer_to(r) for r in (execute, expired, begun, moved)), 60, "the new agent to answer what was pending")
    assert answer_to(execute).ok and "orphan on gpu7: running → interrupted" in answer_to(execute).text
    assert not answer_to(expired).ok and "expired" in answer_to(expired).text
    assert not answer_to(begun).ok and "not run again" in answer_to(begun).text
    assert not answer_to(moved).ok and "changed since it was planned" in answer_to(moved).text
    assert answer_to(answered) is None, "an answered request is acknowledged, not done again"
    wait_for(lambda: client.xpending(stream, GROUP)["pending"] == 0, 20, "nothing left pending")
    assert [e["to"] for e in journal(remote) if e["experiment"] == "orphan"] == ["interrupted"], "executed once"
    assert "interrupted" in (remote / "orphan.json").read_text()


def _record(server: RedisServer, host: str, key: str) -> bytes | None:
    hub = Hub(server.url)
    return server.client().hget(hub.record_key(host, "lab", key), "summary")


def test_an_agent_restarted_after_a_sigkill_takes_its_lease_over_at_once(
    redis_server: RedisServer, processes: list[subprocess.Popen], tmp_path: Path
):
    state = tmp_path / "lab"
    state.mkdir()
    finished_experiment(state, "before")
    first = start_agent(redis_server.url, state, "gpu7", tmp_path / "first.log", "--no-gpus", lease=LONG_LEASE_S)
    processes.append(first)
    wait_for(lambda: _record(redis_server, "gpu7", "before"), 40, "the first agent to publish")
    old = _lease(redis_server, "gpu7")
    assert old["pid"] == first.pid and old["boot_id"] and old["pid_ns"] and old["start_ticks"]

    first.send_signal(signal.SIGKILL)  # dies holding a lease that would live on for most of a minute
    first.wait(timeout=10)
    finished_experiment(state, "after")
    second = start_agent(redis_server.url, state, "gpu7", tmp_path / "second.log", "--no-gpus", lease=LONG_LEASE_S)
    processes.append(second)
    wait_for(lambda: _record(redis_server, "gpu7", "after"), 40, "the restarted agent to publish (long before the old lease lapses)")
    new = _lease(redis_server, "gpu7")
    assert new["pid"] == second.pid and new["instance"] != old["instance"]
    assert second.poll() is None
    log = (tmp_path / "second.log").read_text()
    assert f"took over the lease of pid {first.pid} on this host: that process is gone (pid {first.pid}: no such process)" in log


def _crafted_lease(**changed: object) -> dict:
    """A lease as a dead agent of this machine would have left it, with ``changed`` facts."""
    return {"instance": "dead", **this_holder().as_json(), "pid": DEAD_PID, "sources": ["lab"], **changed}


NOT_TAKEN = {
    "another hostname": ({"hostname": "elsewhere"}, "not taken over: that is not this host ("),
    "another boot": ({"boot_id": "00000000-0000-0000-0000-000000000000"}, "boot id differs"),
    "an older agent's": ({"boot_id": None, "pid_ns": None, "start_ticks": None, "start_time": None, "uid": None}, "an older agent took it"),
}


@pytest.mark.parametrize("case", NOT_TAKEN)
def test_a_lease_not_proven_this_machines_dead_agent_is_refused(redis_server: RedisServer, tmp_path: Path, case: str):
    changed, why = NOT_TAKEN[case]
    lease = {k: v for k, v in _crafted_lease(**changed).items() if v is not None}
    value = json.dumps(lease)
    assert judge_holder(parse_holder(json.dumps(_crafted_lease()).encode()), me=this_holder(), probe=probe).is_dead, (
        "the same lease without the change would be taken over"
    )
    client = redis_server.client()
    client.set(Hub(redis_server.url).lease_key("gpu7"), value, px=LONG_LEASE_S * 1000)

    refused = expwatch("agent", tmp_path, "--hub", redis_server.url, "--host-name", "gpu7", "--no-gpus", "--lease", "60")
    assert refused.returncode == EXIT_CONFLICT, refused.stderr
    line = refused.stderr.strip()
    assert "\n" not in line and f"host gpu7's lease is held by pid {DEAD_PID} on {lease['hostname']}, not taken over" in line
    assert why in line and "it lapses in" in line and "unless its holder renews it" in line
    assert client.get(Hub(redis_server.url).lease_key("gpu7")).decode() == value, "the lease is left as it was"
