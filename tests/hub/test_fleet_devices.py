"""Lab devices across the fleet: the device panel says which host each device belongs to."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from state.devices import DeviceSnapshot, DeviceState
from state.hub.schema import Hub
from tests.hub.fleet import FollowedHub
from tests.hub.redis_server import RedisServer
from tests.runtime.helpers import wait_for
from widgets.device_panel import render_devices

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def _snapshot(workcell: str, *names: str, host: str | None = None) -> DeviceSnapshot:
    devices = [DeviceState(name=n, type="liquid_handler", backend="sim", status="available", updated_at=NOW) for n in names]
    return DeviceSnapshot(workcell=workcell, taken_at=NOW, devices=devices, host=host)


def test_fleet_devices_are_grouped_under_their_host_this_host_first():
    snapshots = [_snapshot("a", "star", host="alpha"), _snapshot("b", "plate-reader", "shaker", host="beta"), _snapshot("here", "hamilton")]
    lines = render_devices(snapshots, ["bad.json: not JSON"], {}, NOW).plain.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["──", "this"], ["✓", "hamilton"], ["──", "alpha"], ["✓", "star"],
        ["──", "beta"], ["✓", "plate-reader"], ["✓", "shaker"], ["!", "unreadable"],
    ]


def test_local_devices_have_no_host_lines_and_the_host_is_never_written():
    assert "──" not in render_devices([_snapshot("here", "star", "shaker")], [], {}, NOW).plain
    assert "host" not in json.loads(_snapshot("a", "star", host="alpha").to_json())


def test_the_hub_names_the_host_from_its_key_not_from_the_published_text(redis_server: RedisServer):
    hub = Hub(redis_server.url)
    for host, claims in (("alpha", None), ("beta", "alpha")):
        hub.renew_lease(host, json.dumps({"instance": host}), 30)
        item = json.loads(_snapshot(f"{host}-cell", f"{host}-star").to_json())
        if claims:
            item["host"] = claims  # a publisher claiming another host's name is not believed
        hub.put_devices(host, json.dumps([item]), 30)
    with FollowedHub(redis_server.url) as view:
        snapshots = wait_for(lambda: s if len(s := view.board.all_devices()[0]) == 2 else None, 30, "both hosts' devices")
    assert {s.workcell: s.host for s in snapshots} == {"alpha-cell": "alpha", "beta-cell": "beta"}
    assert render_devices(snapshots, [], {}, NOW).plain.splitlines()[2] == "── beta"
