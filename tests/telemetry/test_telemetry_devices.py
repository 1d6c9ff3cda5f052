"""Lab devices: simulated PyLabRobot machines set up, used through sync handles, published, stopped."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from pathlib import Path

import pytest

import runtime.devices.workcell as workcell_module
from runtime.devices.demo import DEMO_WORKCELL, demo_workcell
from runtime.devices.session import open_workcell
from runtime.devices.workcell import WorkcellError, format_workcell, load_workcell, parse_workcell
from state.devices import DeviceSnapshot, DeviceStatus, read_device_snapshots


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def demo_subset(*names: str) -> dict:
    doc = json.loads(DEMO_WORKCELL.read_text())
    doc["devices"] = [d for d in doc["devices"] if d["name"] in names]
    return doc


@pytest.fixture
def publish_dir(tmp_path: Path) -> Path:
    return tmp_path / ".expwatch" / "devices"


def status_in_file(path: Path, device: str) -> str | None:
    try:
        snap = DeviceSnapshot.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return None
    return next(d.status.value for d in snap.devices if d.name == device)


def test_three_machines_set_up_used_by_a_step_published_and_stopped(publish_dir, capsys):
    log = io.StringIO()
    workcell = parse_workcell(demo_subset("liquid_handler", "heater_shaker", "plate_reader"))
    session = open_workcell(workcell, publish_dir=publish_dir, experiment_id="exp-1", log=log)
    with session:
        assert set(session.devices) == {"liquid_handler", "heater_shaker", "plate_reader"}
        assert all(d.status is DeviceStatus.AVAILABLE for d in session.snapshot().devices)

        def step(devices) -> list[list[float]]:
            devices["heater_shaker"].set_temperature(37.0)
            devices["heater_shaker"].shake(speed=300)
            tips = devices["liquid_handler"].deck.get_resource("tips")
            devices["liquid_handler"].pick_up_tips(tips["A1:B1"])
            return devices["plate_reader"].read_absorbance(wavelength=450)

        # Steps run on the runner's worker thread, not the device loop.
        result: list = []
        worker = threading.Thread(target=lambda: result.append(step(session.devices)))
        worker.start()
        worker.join(30)
        assert len(result[0]) == 8 and len(result[0][0]) == 12

        snap = {d.name: d for d in session.snapshot().devices}
        assert snap["heater_shaker"].details["temperature_c"] == 37.0
        assert snap["heater_shaker"].details["target_c"] == 37.0
        assert snap["heater_shaker"].details["last_command"] == "shake"
        assert snap["liquid_handler"].details["tips_mounted"] == 2
        assert snap["plate_reader"].details["plate"] == "assay_plate"
        assert snap["heater_shaker"].type == "HeaterShaker"
        assert snap["heater_shaker"].backend == "HeaterShakerChatterboxBackend"

        on_disk = read_device_snapshots(publish_dir)
        assert [s.workcell for s in on_disk] == ["demo"]
        assert on_disk[0].experiment_id == "exp-1"
        assert DeviceSnapshot.model_validate_json(on_disk[0].to_json()) == on_disk[0]
    final = read_device_snapshots(publish_dir)[0]
    assert {d.status for d in final.devices} == {DeviceStatus.OFFLINE}
    out = capsys.readouterr()
    assert "Setting the temperature" not in out.out and "Read the following wells" not in out.out
    assert "read_absorbance will change" not in out.err
    text = log.getvalue()
    assert "[heater_shaker] Setting the temperature to 37.0." in text
    assert "[plate_reader] Read the following wells:" in text
    assert "[liquid_handler] Picking up tips:" in text
    assert "[heater_shaker] Stopping shaker" in text


def test_in_use_while_a_command_runs_and_available_after(publish_dir):
    gate = threading.Event()
    with open_workcell(parse_workcell(demo_subset("heater_shaker")), publish_dir=publish_dir, log=io.StringIO()) as session:
        handle = session.devices["heater_shaker"]
        backend = handle.machine.backend
        original = backend.set_temperature

        async def slow_set_temperature(temperature: float) -> None:
            while not gate.is_set():
                await asyncio.sleep(0.005)
            await original(temperature)

        backend.set_temperature = slow_set_temperature
        worker = threading.Thread(target=handle.set_temperature, args=(45.0,))
        worker.start()
        try:
            wait_for(lambda: handle.status is DeviceStatus.IN_USE)
            assert handle.state().details["command"] == "set_temperature"
            wait_for(lambda: status_in_file(session.snapshot_path, "heater_shaker") == "in_use")
        finally:
            gate.set()
            worker.join(10)
        assert handle.status is DeviceStatus.AVAILABLE
        wait_for(lambda: status_in_file(session.snapshot_path, "heater_shaker") == "available")
        assert "command" not in handle.state().details


def test_a_failing_command_sets_error_and_the_next_success_clears_it(publish_dir):
    with open_workcell(parse_workcell(demo_subset("incubator_block")), publish_dir=publish_dir, log=io.StringIO()) as session:
        block = session.devices["incubator_block"]
        block.set_temperature(30.0)
        with pytest.raises(ValueError, match="active cooling"):
            block.set_temperature(4.0)
        state = block.state()
        assert state.status is DeviceStatus.ERROR
        assert state.error.startswith("set_temperature: ValueError:") and "active cooling" in state.error
        wait_for(lambda: status_in_file(session.snapshot_path, "incubator_block") == "error")
        block.set_temperature(40.0)
        assert block.state().status is DeviceStatus.AVAILABLE and block.state().error is None


def test_periodic_publishing_refreshes_readings(publish_dir):
    with open_workcell(
        parse_workcell(demo_subset("heater_shaker")), publish_dir=publish_dir, log=io.StringIO(), publish_interval=0.02
    ) as session:
        session.devices["heater_shaker"].machine.backend._dummy_temperature = 51.5

        def temperature_on_disk() -> float | None:
            snaps = read_device_snapshots(publish_dir)
            return snaps[0].devices[0].details.get("temperature_c") if snaps else None

        wait_for(lambda: temperature_on_disk() == 51.5)


def test_setup_failure_is_an_error_status_or_a_refusal(publish_dir, monkeypatch):
    from pylabrobot.plate_reading import PlateReaderChatterboxBackend

    async def broken_setup(self) -> None:
        raise ConnectionError("no reader on /dev/ttyUSB0")

    monkeypatch.setattr(PlateReaderChatterboxBackend, "setup", broken_setup)
    workcell = parse_workcell(demo_subset("heater_shaker", "plate_reader"))
    with pytest.raises(WorkcellError, match="plate_reader: setup failed: ConnectionError"):
        open_workcell(workcell, publish_dir=publish_dir, log=io.StringIO())
    assert {d.status for d in read_device_snapshots(publish_dir)[0].devices} == {DeviceStatus.OFFLINE, DeviceStatus.ERROR}
    with open_workcell(workcell, publish_dir=publish_dir, log=io.StringIO(), require_all=False) as session:
        states = {d.name: d for d in session.snapshot().devices}
        assert states["plate_reader"].status is DeviceStatus.ERROR
        assert "no reader" in states["plate_reader"].error
        assert states["heater_shaker"].status is DeviceStatus.AVAILABLE


@pytest.mark.parametrize(
    "class_path, message",
    [
        ("os.system", "only classes under 'pylabrobot.' may be named"),
        ("builtins.eval", "only classes under 'pylabrobot.' may be named"),
        ("numpy.ndarray", "only classes under 'pylabrobot.' may be named"),
        ("pylabrobot.__builtins__.eval", "use a public dotted name"),
        ("pylabrobot.serializer._private", "use a public dotted name"),
        ("pylabrobot ; import os", "only classes under 'pylabrobot.' may be named"),
        (42, "'class' must be the dotted path"),
    ],
)
def test_dangerous_class_paths_are_refused_before_any_import(class_path, message, monkeypatch):
    def no_import(name, *args, **kwargs):
        raise AssertionError(f"import of {name!r} attempted")

    monkeypatch.setattr(workcell_module.importlib, "import_module", no_import)
    doc = {"workcell": "w", "devices": [{"name": "ok", "class": "pylabrobot.heating_shaking.HeaterShaker", "data": {}},
                                          {"name": "evil", "class": class_path, "data": {}}]}
    with pytest.raises(WorkcellError) as caught:
        parse_workcell(doc)
    assert "device 'evil' (entry 1)" in str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "class_path, message",
    [
        ("pylabrobot.resources.Plate", "is not a PyLabRobot machine class"),
        ("pylabrobot.serializer.marshal", "is not a PyLabRobot machine class"),
        ("pylabrobot.no_such_area.Thing", "does not name a class"),
    ],
)
def test_pylabrobot_names_that_are_not_machines_are_refused(class_path, message, publish_dir):
    doc = {"workcell": "w", "devices": [{"name": "thing", "class": class_path, "data": {}}]}
    with pytest.raises(WorkcellError, match=message) as caught:
        open_workcell(parse_workcell(doc), publish_dir=publish_dir)
    assert "device 'thing' (entry 0)" in str(caught.value)


def test_bad_data_and_bad_shapes_name_the_entry(tmp_path, publish_dir):
    doc = {"workcell": "w", "devices": [{"name": "hs", "class": "pylabrobot.heating_shaking.HeaterShaker",
                                          "data": {"type": "HeaterShaker", "backend": {"type": "NoSuchBackend"}}}]}
    with pytest.raises(WorkcellError, match=r"device 'hs' \(entry 0\): its data is not a serialized HeaterShaker"):
        open_workcell(parse_workcell(doc), publish_dir=publish_dir)
    with pytest.raises(WorkcellError, match="the name is used twice"):
        parse_workcell({"workcell": "w", "devices": [demo_subset("heater_shaker")["devices"][0]] * 2})
    with pytest.raises(WorkcellError, match="'workcell' must be a name"):
        parse_workcell({"workcell": "../etc", "devices": []})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(WorkcellError, match="not a readable JSON file"):
        load_workcell(bad)


def test_log_can_be_a_function_that_prints(publish_dir, capfd):
    """A runner whose stdout is the run log passes ``print``: no loop, no loss."""
    lines: list[str] = []

    def log_line(line: str) -> None:
        lines.append(line)
        print(line)

    with open_workcell(parse_workcell(demo_subset("centrifuge")), publish_dir=publish_dir, log=log_line) as session:
        session.devices["centrifuge"].open_door()
        assert session.snapshot().devices[0].details["door_open"] is True
    assert "[centrifuge] Opening door" in lines
    assert "[centrifuge] Opening door" in capfd.readouterr().out


def test_shipped_demo_workcell_matches_its_generator():
    assert DEMO_WORKCELL.read_text() == format_workcell(demo_workcell())
    assert [d.name for d in load_workcell(DEMO_WORKCELL).devices] == [
        "liquid_handler", "heater_shaker", "plate_reader", "incubator_block", "centrifuge",
    ]


def test_read_device_snapshots_reports_bad_files(tmp_path):
    good = DeviceSnapshot(workcell="a", taken_at="2026-01-01T00:00:00Z")
    (tmp_path / "a.json").write_text(good.to_json())
    (tmp_path / "b.json").write_text("{broken")
    (tmp_path / "c.json").write_text(json.dumps({"schema": "expwatch.devices/9", "workcell": "c", "taken_at": "2026-01-01T00:00:00Z"}))
    (tmp_path / "notes.txt").write_text("ignored")
    errors: list[tuple[Path, str]] = []
    found = read_device_snapshots(tmp_path, on_error=lambda p, r: errors.append((p, r)))
    assert [s.workcell for s in found] == ["a"]
    assert sorted(p.name for p, _ in errors) == ["b.json", "c.json"]
    assert read_device_snapshots(tmp_path / "missing") == []


def test_handles_refuse_private_names_and_closed_sessions(publish_dir):
    session = open_workcell(parse_workcell(demo_subset("centrifuge")), publish_dir=publish_dir, log=io.StringIO())
    handle = session.devices["centrifuge"]
    with pytest.raises(AttributeError):
        handle._door_open
    with pytest.raises(AttributeError, match="no method"):
        handle.call("fly")
    session.close()
    session.close()
    with pytest.raises(RuntimeError, match="closed"):
        handle.open_door()


def test_a_failing_state_getter_reads_none_with_the_reason(publish_dir):
    with open_workcell(parse_workcell(demo_subset("heater_shaker")), publish_dir=publish_dir, log=io.StringIO()) as session:
        handle = session.devices["heater_shaker"]

        async def broken_reading() -> float:
            raise TimeoutError("no answer from the controller")

        handle.machine.backend.get_current_temperature = broken_reading
        handle.lock_plate()
        details = handle.state().details
        assert details["temperature_c"] is None
        assert details["reading_error"] == "temperature_c: TimeoutError: no answer from the controller"
        assert handle.status is DeviceStatus.AVAILABLE
        del handle.machine.backend.get_current_temperature
        handle.unlock_plate()
        assert "reading_error" not in handle.state().details
        assert handle.state().details["temperature_c"] == 0.0
