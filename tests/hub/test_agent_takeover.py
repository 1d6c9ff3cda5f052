"""One agent per host name, and what a killed agent left pending: real agents, a real redis-server."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from runtime.exit_codes import EXIT_CONFLICT
from state.hub.actions import GROUP, ActionAnswer, ActionRequest, HubActions, decode_answer, encode, new_id
from state.hub.schema import Hub
from tests.dashboard.conftest import DEAD_PID, native_doc, write_raw
from tests.hub.fleet import start_agent
from tests.hub.redis_server import RedisServer
from tests.runtime.helpers import expwatch, journal, wait_for

pytestmark = pytest.mark.slow


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
