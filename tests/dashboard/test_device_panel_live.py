"""The devices panel keeps its ages counting while nothing is published, and shows whole lines again once wider."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from app.app import DashboardOptions, ExpwatchApp
from state.devices import DeviceSnapshot, DeviceState
from state.store import StateStore
from widgets.device_panel import DevicePanel

from tests.dashboard.conftest import FROZEN, ScriptedProbe, StaticGpuSource
from tests.dashboard.helpers import wait_for


def _publish(root: Path) -> None:
    devices = StateStore(root).devices_dir
    devices.mkdir(parents=True, exist_ok=True)
    at = FROZEN - timedelta(seconds=5)
    snap = DeviceSnapshot(workcell="bench", experiment_id="lab", taken_at=at, devices=[
        DeviceState(name="plate_reader", type="PlateReader", backend="sim", status="available",
                    details={"plate": "assay_plate", "last_command": "read_absorbance"}, updated_at=at),
    ])
    (devices / "bench.json").write_text(snap.to_json())


class Clock:
    def __init__(self) -> None:
        self.now = FROZEN

    def __call__(self) -> datetime:
        return self.now


def _line(app: ExpwatchApp) -> str:
    panel = app.main.query_one(DevicePanel)
    return panel.render_line(0).text


async def test_device_ages_count_on_with_the_clock_and_lines_come_back_whole_when_wider(state_dir: Path):
    _publish(state_dir)
    clock = Clock()
    app = ExpwatchApp(DashboardOptions(sources=(state_dir,), gpus=False), clock=clock, probe=ScriptedProbe(),
                      gpu_source=StaticGpuSource())
    async with app.run_test(size=(60, 24)) as pilot:
        await wait_for(pilot, lambda: "plate_reader" in _line(app), 10, "the device line")
        narrow = _line(app)
        assert "5s" in narrow and "last_command" not in narrow, narrow
        clock.now = FROZEN + timedelta(seconds=7)  # nothing published since: only the clock moved
        await wait_for(pilot, lambda: " 12s " in _line(app), 5, "the age to count on")
        await pilot.resize_terminal(200, 40)
        await wait_for(pilot, lambda: "last_command=read_absorbance" in _line(app), 5, "the whole line once wider")
        assert "12s plate=assay_plate last_command=read_absorbance" in _line(app)
        assert not app.worker_failures
