"""The dashboard on a hub: a local directory and the fleet in one table, hosts shown, hub loss said once."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from app.app import DashboardOptions, ExpwatchApp
from runtime.liveness import LocalProbe
from tests.dashboard.helpers import wait_for
from widgets.status_header import StatusHeader
from tests.hub.fleet import finished_experiment, running_experiment, start_agent
from tests.hub.redis_server import RedisServer

pytestmark = pytest.mark.slow


async def test_dashboard_shows_the_fleet_beside_a_directory(redis_server: RedisServer, processes: list[subprocess.Popen], tmp_path: Path):
    remote, local = tmp_path / "remote", tmp_path / "local"
    remote.mkdir()
    local.mkdir()
    owner = subprocess.Popen(["sleep", "600"])
    processes.append(owner)
    running_experiment(remote, "train", owner.pid)
    finished_experiment(local, "here")
    processes.append(start_agent(redis_server.url, remote, "gpu7", tmp_path / "agent.log"))
    options = DashboardOptions(sources=(str(local), redis_server.url), gpus=False)
    app = ExpwatchApp(options, clock=lambda: datetime.now(timezone.utc), probe=LocalProbe())
    hub_name = app.sources[1].name
    said: list[str] = []
    notify = app.notify
    app.notify = lambda message, **kw: (said.append(message), notify(message, **kw))[1]  # type: ignore[method-assign]
    async with app.run_test(size=(160, 40)) as pilot:
        key = f"{hub_name}:gpu7/remote/train"
        await wait_for(pilot, lambda: app.board.get(key) is not None and app.board.get(key).verdict is not None, 30, "the remote row")
        assert app.board.get(key).verdict.is_alive
        assert app.main.table.show_source
        assert app.sources[1].allowed_actions(app.board.get(key).entry) == {"resume", "mark_stale", "stop"}, "asked of the host's agent"
        redis_server.kill()
        await wait_for(pilot, lambda: any("connection refused" in m or "cannot connect" in m for m in said), 20, "the hub's loss to be said")
        assert app.board.get(key) is not None, "the last good picture stays"
        await wait_for(pilot, lambda: "last good picture" in app.screen.query_one(StatusHeader).note, 10, "the header to say so")
        assert not app.worker_failures
