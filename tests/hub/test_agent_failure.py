"""A part of the agent that fails stops the agent, saying why: never a live lease over a dead watch."""

from __future__ import annotations

import asyncio
from pathlib import Path

from runtime.agent import HubAgent
from state.hub.schema import Hub
from state.sources import DirectorySource
from tests.hub.redis_server import RedisServer


def test_a_failed_watch_stops_the_agent_with_the_reason(redis_server: RedisServer, tmp_path: Path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    said: list[str] = []
    agent = HubAgent(Hub(redis_server.url), [DirectorySource(state_dir, read_only=True)], "gpu9",
                     lease_s=2.0, renew_s=0.5, on_status=said.append)

    def broken_rescan(source: DirectorySource) -> None:
        raise ValueError("codec refused a record")

    agent._apply_reconcile = broken_rescan  # the watch's first batch rescans through it

    async def main() -> None:
        await asyncio.wait_for(agent.run(asyncio.Event()), timeout=60)

    asyncio.run(main())
    assert agent.failure is not None
    assert agent.failure.startswith(f"watch of {state_dir}") and "ValueError: codec refused a record" in agent.failure
    assert any("stopping" in line for line in said)
    hub = Hub(redis_server.url)
    assert hub.call(lambda c: c.exists(hub.lease_key("gpu9"))) == 0, "its lease is released, so the host shows silent"
