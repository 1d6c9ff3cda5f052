"""Actions on another host's experiments: the dashboard asks, that host's agent plans and executes, answers."""

from __future__ import annotations

import signal
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from app.app import DashboardOptions, ExpwatchApp
from app.screens.confirm import ConfirmDialog
from runtime.liveness import LocalProbe
from state.hub.actions import ActionRequest, HubActions, decode_answer, decode_request, encode
from state.hub.schema import Hub
from tests.dashboard.conftest import DEAD_PID, native_doc, write_raw
from tests.dashboard.helpers import wait_for
from state.native import RunStatus
from state.store import StateStore
from tests.hub.fleet import finished_experiment, start_agent
from tests.hub.redis_server import RedisServer
from tests.runtime.helpers import make_native, read_doc, terminate_all, write_study

pytestmark = pytest.mark.slow


def _app(url: str, *, read_only: bool = False) -> tuple[ExpwatchApp, list[str]]:
    app = ExpwatchApp(DashboardOptions(sources=(url,), gpus=False, read_only=read_only), clock=lambda: datetime.now(timezone.utc), probe=LocalProbe())
    said: list[str] = []
    notify = app.notify
    app.notify = lambda message, **kw: (said.append(message), notify(message, **kw))[1]  # type: ignore[method-assign]
    return app, said


def _select(app: ExpwatchApp, key: str) -> bool:
    app.main.table.move_cursor_to_key(key)
    return app.main.selected_key == key


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
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), 20, "the refusal")
        assert "no agent alive on gpu7" in app.screen.refusal
        assert f"expwatch agent --hub {redis_server.url} --host-name gpu7 {remote}" in "\n".join(app.screen.lines)
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


async def test_resume_key_on_another_hosts_experiment_relaunches_it_there(redis_server: RedisServer, processes: list[subprocess.Popen], tmp_path: Path):
    alpha, beta = tmp_path / "alpha", tmp_path / "beta"
    alpha.mkdir()
    beta.mkdir()
    finished_experiment(alpha, "baseline")
    make_native(beta, write_study(tmp_path), "half", completed=range(0, 20, 2))
    processes.append(start_agent(redis_server.url, alpha, "alpha", tmp_path / "alpha.log", "--no-gpus"))
    beta_agent = start_agent(redis_server.url, beta, "beta", tmp_path / "beta.log", "--no-gpus", lease=1.5)
    processes.append(beta_agent)
    app, said = _app(redis_server.url)
    try:
        async with app.run_test(size=(160, 40)) as pilot:
            key = "beta/beta/half"
            await wait_for(pilot, lambda: {key, "alpha/alpha/baseline"} <= app.board.rows.keys(), 30, "both hosts' rows")
            await wait_for(pilot, lambda: _select(app, key), 30, "the row to be drawn and selected")
            await pilot.press("R")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), 30, "beta's plan in the dialog")
            assert app.screen.title_text == "Resume half on beta?" and app.screen.refusal is None
            assert any("10 to run, 10 completed (skipped)" in line for line in app.screen.lines)
            await pilot.press("y")
            await wait_for(pilot, lambda: any("resumed half on beta: pid" in m for m in said), 30, "beta's answer")
            await wait_for(pilot, lambda: app.board.get(key).entry.status == "completed", 60, "the relaunched run to complete there")
            told = next(m for m in said if "resumed half on beta: pid" in m)
            log = Path(told.rsplit("log ", 1)[1])
            assert log.is_relative_to(beta) and "resume attempt 2" in log.read_text(), "the runner ran under beta's state directory"
            doc = read_doc(beta, "half")
            assert doc.attempt == 2 and all(r.status is RunStatus.COMPLETED for r in doc.runs)
            assert [h.to.value for h in doc.history][-2:] == ["running", "completed"], "back to running, then completed"
            assert not (alpha / ".expwatch" / "logs").exists(), "nothing ran on the other host"

            beta_agent.send_signal(signal.SIGKILL)
            beta_agent.wait(timeout=10)
            await wait_for(pilot, lambda: not app.sources[0].lease_of("beta").alive, 20, "beta's lease to expire")
            await pilot.press("R")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), 20, "the refusal")
            assert "no agent alive on beta" in app.screen.refusal
            assert f"expwatch agent --hub {redis_server.url} --host-name beta {beta}" in "\n".join(app.screen.lines)
            await pilot.press("escape")
            assert not app.worker_failures
    finally:
        doc = read_doc(beta, "half")
        terminate_all(doc.owners() if doc is not None else ())


async def test_an_answer_that_comes_after_the_wait_ended_is_shown(redis_server: RedisServer, processes: list[subprocess.Popen], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("state.sources.hub.ACTION_WAIT_S", 4.0)
    remote = tmp_path / "remote"
    remote.mkdir()
    write_raw(remote, native_doc("orphan", "running", pid=DEAD_PID))
    processes.append(start_agent(redis_server.url, remote, "gpu7", tmp_path / "agent.log", "--no-gpus"))
    app, said = _app(redis_server.url)
    async with app.run_test(size=(160, 40)) as pilot:
        key = "gpu7/remote/orphan"
        await wait_for(pilot, lambda: app.board.get(key) is not None and app.board.get(key).verdict is not None, 30, "the remote row")
        app.request_mark_stale(key)
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), 30, "the host's plan in the dialog")
        with StateStore(remote).lock("orphan"):  # the agent takes the request in time, then waits for this lock
            await pilot.press("y")
            await wait_for(pilot, lambda: any("no answer from its agent in 4 s" in m for m in said), 30, "the wait to end")
            assert "running" in (remote / "orphan.json").read_text()
        await wait_for(pilot, lambda: any("late answer" in m for m in said), 30, "the answer that came late")
        assert "orphan on gpu7: running → interrupted" in next(m for m in said if "late answer" in m)
        assert "interrupted" in (remote / "orphan.json").read_text()
        assert not app.worker_failures
