"""Workcells as PyLabRobot writes them: one machine's serialize(), a list of entries, backends from their own module."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from pylabrobot.heating_shaking import HeaterShaker, HeaterShakerChatterboxBackend
from pylabrobot.liquid_handling import LiquidHandler
from pylabrobot.liquid_handling.backends.hamilton.STAR_chatterbox import STARChatterboxBackend
from pylabrobot.resources import Coordinate
from pylabrobot.resources.hamilton import STARLetDeck
from pylabrobot.temperature_controlling import TemperatureController, TemperatureControllerChatterboxBackend

from app.cli import main
from runtime.devices.pylabrobot_index import modules_defining
from runtime.devices.session import open_workcell
from runtime.devices.workcell import WorkcellError, build_machine, load_workcell, parse_workcell


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPWATCH_STATE_DIR", str(tmp_path / "state"))


def heater_shaker(name: str = "hs") -> HeaterShaker:
    return HeaterShaker(name=name, size_x=127.0, size_y=85.0, size_z=60.0,
                        backend=HeaterShakerChatterboxBackend(), child_location=Coordinate(0, 0, 60))


def star() -> LiquidHandler:
    return LiquidHandler(backend=STARChatterboxBackend(), deck=STARLetDeck())


def incubator(name: str = "block") -> TemperatureController:
    return TemperatureController(name=name, size_x=128.0, size_y=86.0, size_z=90.0,
                                 backend=TemperatureControllerChatterboxBackend(), child_location=Coordinate(0, 0, 90))


def same_machine(rebuilt: dict, original: dict) -> bool:
    """Equal but for the counter PyLabRobot appends to each prototype tip's name, which differs per process."""

    def without_tip_names(value):
        if isinstance(value, dict):
            tip_name = value.get("type") == "HamiltonTip" or "total_tip_length" in value
            return {k: without_tip_names(v) for k, v in value.items() if not (tip_name and k == "name")}
        if isinstance(value, list):
            return [without_tip_names(v) for v in value]
        return value

    return without_tip_names(rebuilt) == without_tip_names(original)


def devices_json(path: Path, capsys) -> dict:
    assert main(["devices", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_one_machines_own_serialize_output_round_trips_through_devices_json(tmp_path, capsys):
    machine = heater_shaker("shaker_1")
    path = tmp_path / "shaker_1.json"
    path.write_text(json.dumps(machine.serialize()))

    data = devices_json(path, capsys)

    assert data["workcell"] == "shaker_1"
    [ready] = data["ready"]["devices"]
    assert (ready["name"], ready["type"], ready["backend"], ready["status"]) == (
        "shaker_1", "HeaterShaker", "HeaterShakerChatterboxBackend", "available")
    assert [d["status"] for d in data["stopped"]["devices"]] == ["offline"]
    [spec] = load_workcell(path).devices
    assert spec.class_path == "pylabrobot.heating_shaking.heater_shaker.HeaterShaker"
    assert build_machine(spec).serialize() == machine.serialize()


def test_a_star_simulator_outside_the_areas_chatterbox_module_is_imported_from_its_own(tmp_path, capsys):
    machine = star()
    assert machine.serialize()["backend"]["type"] == "STARChatterboxBackend"
    path = tmp_path / "star.json"
    path.write_text(json.dumps(machine.serialize()))

    data = devices_json(path, capsys)

    [ready] = data["ready"]["devices"]
    assert (ready["name"], ready["type"], ready["backend"], ready["status"]) == (
        "lh_deck", "LiquidHandler", "STARChatterboxBackend", "available")
    assert ready["details"]["channels"] == 8
    # PyLabRobot's own deserializer refuses the device_address STARChatterboxBackend serializes; it is left out.
    rebuilt = build_machine(load_workcell(path).devices[0])
    assert same_machine(rebuilt.serialize(), machine.serialize())


def test_a_list_of_entries_in_each_spelling_round_trips(tmp_path, capsys):
    entries = [
        {"name": "shaker", "class": "pylabrobot.heating_shaking.HeaterShaker", "data": heater_shaker("shaker").serialize()},
        {"key": "block", "module": "pylabrobot.temperature_controlling", "class": "TemperatureController",
         "data": incubator("block").serialize()},
        {"key": "star", "class": "LiquidHandler", "data": star().serialize()},
        {"name": "plain", "data": incubator("plain").serialize()},
    ]
    path = tmp_path / "bench 2.json"
    path.write_text(json.dumps(entries))

    data = devices_json(path, capsys)

    assert data["workcell"] == "bench_2"
    ready = {d["name"]: d for d in data["ready"]["devices"]}
    assert {n: (d["type"], d["status"]) for n, d in ready.items()} == {
        "shaker": ("HeaterShaker", "available"),
        "block": ("TemperatureController", "available"),
        "star": ("LiquidHandler", "available"),
        "plain": ("TemperatureController", "available"),
    }
    specs = {s.name: s for s in load_workcell(path).devices}
    assert specs["plain"].class_path == "pylabrobot.temperature_controlling.temperature_controller.TemperatureController"
    for entry in entries:
        name = entry.get("name", entry.get("key"))
        assert same_machine(build_machine(specs[name]).serialize(), entry["data"])


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"name": "x", "module": "os", "class": "system", "data": {}}, "only classes under 'pylabrobot.'"),
        ({"name": "x", "module": "pylabrobot._x", "class": "A", "data": {}}, "use a public dotted name"),
        ({"name": "x", "module": "pylabrobot.shaking", "class": "a.b", "data": {}}, "'class' must be a class name"),
        ({"name": "x", "class": "NoSuchMachine", "data": {}}, "no class named 'NoSuchMachine' is defined in pylabrobot"),
        ({"name": "x", "class": "Pump", "data": {}}, "defined in several pylabrobot modules"),
        ({"name": "x", "key": "y", "class": "Shaker", "data": {}}, "'name' and 'key' disagree"),
        ({"key": "../x", "class": "Shaker", "data": {}}, "'name' must be letters"),
    ],
)
def test_list_entries_that_are_refused_before_any_import(entry, message):
    assert len(modules_defining("Pump")) > 1
    with pytest.raises(WorkcellError, match=message):
        parse_workcell([entry])


def test_shapes_that_are_no_workcell_are_refused_with_the_forms_named():
    for raw in ({"name": "x"}, "text", []):
        with pytest.raises(WorkcellError, match="workcell"):
            parse_workcell(raw)


def test_a_backend_type_from_outside_pylabrobot_is_never_imported(tmp_path):
    data = heater_shaker().serialize()
    data["backend"] = {"type": "Popen"}
    with pytest.raises(WorkcellError, match="its data is not a serialized HeaterShaker"):
        build_machine(parse_workcell(data).devices[0])
    assert modules_defining("Popen") == ()


def test_readings_are_cleared_after_stop_as_pylabrobot_clears_them(tmp_path):
    with open_workcell(parse_workcell(incubator().serialize()), publish_dir=tmp_path / "devices",
                       log=io.StringIO()) as session:
        handle = session.devices["block"]
        handle.set_temperature(37)
        assert handle.state().details["target_c"] == 37
        assert "temperature_c" in handle.state().details
    stopped = session.snapshot().devices[0]
    assert stopped.status.value == "offline"
    assert stopped.details == {"last_command": "set_temperature", "target_c": None}


def test_shaking_state_is_shown_where_the_backend_can_tell_it(tmp_path):
    with open_workcell(parse_workcell(heater_shaker().serialize()), publish_dir=tmp_path / "devices",
                       log=io.StringIO()) as session:
        handle = session.devices["hs"]
        assert "shaking" not in handle.state().details  # the simulator cannot tell
        spinning = {"on": False}

        async def get_is_shaking() -> bool:
            return spinning["on"]

        async def start_shaking(speed: float) -> None:
            spinning["on"] = True

        handle.machine.backend.get_is_shaking = get_is_shaking
        handle.machine.backend.start_shaking = start_shaking
        handle.shake(speed=300)
        assert handle.state().details["shaking"] is True
        spinning["on"] = False
        handle.lock_plate()
        assert handle.state().details["shaking"] is False
    assert "shaking" not in session.snapshot().devices[0].details
