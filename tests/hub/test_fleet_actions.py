"""Actions on another host's experiments: the dashboard asks, that host's agent plans and executes, answers."""

from __future__ import annotations

import signal
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from app.app import DashboardOptions, ExpwatchApp
from runtime.liveness import LocalProbe
from state.hub.actions import ActionRequest, HubActions, decode_answer, decode_request, encode
from state.hub.schema import Hub
from tests.dashboard.conftest import DEAD_PID, native_doc, write_raw
from tests.dashboard.helpers import wait_for
from tests.hub.fleet import start_agent
from tests.hub.redis_server import RedisServer

pytestmark = pytest.mark.slow


def _app(url: str, *, read_only: bool = False) -> tuple[ExpwatchApp, list[str]]:
    app = ExpwatchApp(DashboardOptions(sources=(url,), gpus=False, read_only=read_only), clock=lambda: datetime.now(timezone.utc), probe=LocalProbe())
    said: list[str] = []
    notify = app.notify
    app.notify = lambda message, **kw: (said.append(message), notify(message, **kw))[1]  # type: ignore[method-assign]
    return app, said


async def test_mark_stale_asked_of_the_host_agent_then_refused_when_it_is_gone(redis_server: RedisServer, processes: list[subprocess.Popen], tmp_path: Path):
    remote = tmp_path / "remote"
    remote.mkdir()
    write_raw(remote, native_doc("orphan", "running", pid=DEAD_PID))
    agent = start_agent(redis_server.url, remote, "gpu7", tmp_path / "agent.log", "--no-gpus", lease=1.5)
    processes.append(agent)
    app, said = _app(redis_server.url)
    async with app.run_test(size=(160, 40)) as pilot:
        key = "gpu7/remote/orphan"  # one source: board keys are the source's own
        await wait_for(pilot, lambda: app.board.get(key) is not None and app.board.get(key).verdict is not None, 30, "the remote row")
        app.request_mark_stale(key)
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmDialog", 30, "the host's plan in the dialog")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.board.get(key).entry.status == "interrupted", 30, "the host's file to be marked and republished")
        assert any("orphan on gpu7: running → interrupted" in m for m in said)
        assert "interrupted" in (remote / "orphan.json").read_text()

        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        await wait_for(pilot, lambda: not app.sources[0].lease_of("gpu7").alive, 20, "the lease to expire")
        app.request_resume(key)
        await wait_for(pilot, lambda: any("no agent alive on gpu7" in m for m in said), 20, "the refusal")
        refusal = next(m for m in said if "no agent alive on gpu7" in m)
        assert f"expwatch agent --hub {redis_server.url} --host-name gpu7 {remote}" in refusal
        assert app.screen.__class__.__name__ != "ConfirmDialog"
        assert not app.worker_failures


async def test_a_read_only_observer_never_sends_an_action(redis_server: RedisServer, processes: list[subprocess.Popen], tmp_path: Path):
    remote = tmp_path / "remote"
    remote.mkdir()
    write_raw(remote, native_doc("orphan", "running", pid=DEAD_PID))
    processes.append(start_agent(redis_server.url, remote, "gpu7", tmp_path / "agent.log", "--no-gpus"))
    app, said = _app(redis_server.url, read_only=True)
    async with app.run_test(size=(160, 40)) as pilot:
        key = "gpu7/remote/orphan"  # one source: board keys are the source's own
        await wait_for(pilot, lambda: app.board.get(key) is not None, 30, "the remote row")
        app.request_mark_stale(key)
        await wait_for(pilot, lambda: any("read-only" in m for m in said), 10, "the refusal")
    assert redis_server.client().xlen(HubActions(Hub(redis_server.url)).stream_key("gpu7")) == 0


async def test_an_agent_started_with_no_actions_refuses(redis_server: RedisServer, processes: list[subprocess.Popen], tmp_path: Path):
    remote = tmp_path / "remote"
    remote.mkdir()
    write_raw(remote, native_doc("orphan", "running", pid=DEAD_PID))
    processes.append(start_agent(redis_server.url, remote, "gpu7", tmp_path / "agent.log", "--no-gpus", "--no-actions"))
    app, said = _app(redis_server.url)
    async with app.run_test(size=(160, 40)) as pilot:
        key = "gpu7/remote/orphan"  # one source: board keys are the source's own
        await wait_for(pilot, lambda: app.board.get(key) is not None and app.board.get(key).verdict is not None, 30, "the remote row")
        app.request_mark_stale(key)
        await wait_for(pilot, lambda: any("--no-actions" in m for m in said), 30, "the agent's refusal")
    assert "running" in (remote / "orphan.json").read_text()


def test_hostile_requests_and_answers():
    assert decode_request(b"nope") is None and decode_request(b"{" * 100_000) is None
    request = ActionRequest("abc", "stop", "plan", "lab", "exp", 1)
    assert decode_request(encode(request)) == request
    assert not decode_answer(b'{"id": "abc", "ok": "maybe"}', "abc").ok
    assert "another request" in decode_answer(b'{"id": "xyz", "ok": true, "text": "done"}', "abc").text
    assert "larger" in decode_answer(b"x" * (300 * 1024), "abc").text
