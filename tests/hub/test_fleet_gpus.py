"""GPUs across the fleet: agents publish their sampler's snapshots, the dashboard's panel groups them by host."""

from __future__ import annotations

import signal
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from rich.text import Text

from textual.app import App

from app.app import DashboardOptions, ExpwatchApp
from runtime.gpu.simulated import SimulatedGpuSource
from runtime.liveness import LocalProbe
from state.hub.codec import decode_gpus, encode_gpus
from state.hub.schema import Hub
from state.telemetry import HostGpus
from tests.dashboard.helpers import wait_for as wait_on_pilot
from tests.hub.fleet import FollowedHub, finished_experiment, start_agent
from tests.hub.redis_server import RedisServer
from tests.runtime.helpers import wait_for
from widgets.gpu_panel import GpuPanel, render_fleet


def _hosts(view: FollowedHub) -> dict[str, HostGpus]:
    return {g.host: g for g in view.source.fleet_gpus()}


def _all_published(view: FollowedHub, names: set[str]) -> dict[str, HostGpus] | None:
    hosts = _hosts(view)
    return hosts if names <= hosts.keys() and all(hosts[n].snapshot for n in names) else None


@pytest.mark.slow
def test_agents_publish_gpus_that_go_silent_with_their_lease(redis_server: RedisServer, processes: list[subprocess.Popen], tmp_path: Path):
    alpha, beta = tmp_path / "alpha", tmp_path / "beta"
    for d in (alpha, beta):
        d.mkdir()
        finished_experiment(d, "done")
    agent = start_agent(redis_server.url, alpha, "alpha", tmp_path / "alpha.log", "--simulate-gpus", "2", lease=1.5)
    processes += [agent, start_agent(redis_server.url, beta, "beta", tmp_path / "beta.log", "--simulate-gpus", "4")]
    with FollowedHub(redis_server.url) as view:
        hosts = wait_for(lambda: _all_published(view, {"alpha", "beta"}), 30, "both hosts' GPUs")
        assert len(hosts["alpha"].snapshot.gpus) == 2 and len(hosts["beta"].snapshot.gpus) == 4
        assert hosts["alpha"].snapshot.simulated and hosts["alpha"].silent_s is None
        wait_for(lambda: len(_hosts(view)["beta"].history.get(0, ())) >= 2, 20, "a history of samples")
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        silent = wait_for(lambda: next((g for g in _hosts(view).values() if g.host == "alpha" and g.silent_s is not None), None), 20, "alpha's lease to expire")
        assert silent.snapshot is None, "a silent host's GPUs expire with its lease"
        assert _hosts(view)["beta"].snapshot is not None


def test_hostile_gpu_snapshots_become_a_status(redis_server: RedisServer):
    good = SimulatedGpuSource(count=1).sample()
    assert decode_gpus(encode_gpus(good, {}))[0] == good
    for raw in (b"nope", b'{"snapshot": {"gpus": "x"}}', b"[" * 100_000, b"{" + b" " * (2 * 1024 * 1024) + b"}"):
        snapshot, attributions = decode_gpus(raw)
        assert not snapshot.ok and snapshot.gpus == () and attributions == {}
    hub = Hub(redis_server.url)
    hub.put_gpus("evil", '{"snapshot": {"gpus": [{"index": "zero"}]}}', 10)
    assert decode_gpus(hub.gpus(["evil", "absent"])["evil"])[0].status.startswith("invalid GPU snapshot")


def test_fleet_rendering_groups_by_host():
    here = SimulatedGpuSource(count=1).sample()
    remote = SimulatedGpuSource(count=2).sample()
    fleet = (HostGpus("gpu7", remote), HostGpus("gpu8", None, silent_s=42.0), HostGpus("gpu9", None))
    text = render_fleet(here, {}, {}, fleet, {}, 100).plain.splitlines()
    assert text[0] == "── this host" and text[2] == "── gpu7 (simulated)"
    assert text[3].startswith("0 ") and text[4].startswith("1 ")
    assert text[5] == "── gpu8" and "silent for" in text[6] and "lease expired" in text[6]
    assert text[7:] == ["── gpu9", "no GPU snapshot published"]
    assert isinstance(render_fleet(None, {}, {}, fleet, {}, 100), Text)


@pytest.mark.slow
async def test_dashboard_gpu_panel_shows_the_fleet(redis_server: RedisServer, processes: list[subprocess.Popen], tmp_path: Path):
    remote = tmp_path / "remote"
    remote.mkdir()
    finished_experiment(remote, "done")
    processes.append(start_agent(redis_server.url, remote, "gpu7", tmp_path / "agent.log", "--simulate-gpus", "3"))
    options = DashboardOptions(sources=(redis_server.url,))
    app = ExpwatchApp(options, clock=lambda: datetime.now(timezone.utc), probe=LocalProbe(), gpu_source=SimulatedGpuSource(count=1))
    async with app.run_test(size=(160, 50)) as pilot:
        panel = app.main.query_one(GpuPanel)
        await wait_on_pilot(pilot, lambda: panel.shown is not None and "── gpu7 (simulated)" in panel.shown.plain and "── this host" in panel.shown.plain, 30, "the fleet's GPUs")
        lines = panel.shown.plain.splitlines()
        at = lines.index("── gpu7 (simulated)")
        assert [line.split()[0] for line in lines[at + 1 : at + 4]] == ["0", "1", "2"]
        assert panel.border_title == "GPUs: 2 hosts"
        assert not app.worker_failures


class _OnePanel(App):
    """A GPU panel of 6 rows (4 of text) over a fleet of 32 hosts."""

    CSS = "GpuPanel { max-height: 6; }"

    def compose(self):
        yield GpuPanel()


def _in_view(panel: GpuPanel) -> list[str]:
    return [panel.render_line(y).text.strip() for y in range(panel.scrollable_content_region.height)]


async def test_a_fleet_taller_than_the_panel_scrolls_by_key_and_draws_only_what_is_in_view():
    fleet = tuple(HostGpus(f"gpu{n:02d}", SimulatedGpuSource(count=8).sample()) for n in range(32))
    app = _OnePanel()
    async with app.run_test(size=(100, 20)) as pilot:
        panel = app.query_one(GpuPanel)
        panel.show(None, fleet=fleet)
        await wait_on_pilot(pilot, lambda: str(panel.border_subtitle or "").startswith("1-4 of 288"), 10, "the position on the border")
        assert _in_view(panel)[0] == "── gpu00 (simulated)" and _in_view(panel)[1].startswith("0 ")
        assert max(panel._strips) < 4, "only the lines in view are drawn"
        assert panel.shown.plain.splitlines()[-1].startswith("7 "), "snapshot and tests still get every line"
        panel.focus()
        await pilot.press("end")
        await wait_on_pilot(pilot, lambda: str(panel.border_subtitle or "").startswith("285-288 of 288"), 10, "the last lines in view")
        assert _in_view(panel)[-1].startswith("7 ") and panel.shown.plain.splitlines()[279] == "── gpu31 (simulated)"
        await pilot.press("home", "down")
        await wait_on_pilot(pilot, lambda: str(panel.border_subtitle or "").startswith("2-5 of 288"), 10, "one line down")
        assert _in_view(panel)[0].startswith("0 ")
