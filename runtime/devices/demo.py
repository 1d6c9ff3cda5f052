"""The demo workcell: five simulated (chatterbox) PyLabRobot machines, for the demo and the tests.

The shipped ``runtime/workcells/demo.json`` is generated from these machines'
own ``serialize()`` (``write_demo_workcell``), so it always loads in the
installed PyLabRobot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.devices.capture import capture_device_output
from runtime.devices.workcell import format_workcell

WORKCELLS_DIR = Path(__file__).parent.parent / "workcells"
DEMO_WORKCELL = WORKCELLS_DIR / "demo.json"

def demo_machines() -> list[tuple[str, str, Any]]:
    """Five simulated machines: (name, class path, machine)."""
    with capture_device_output(None):
        from pylabrobot.centrifuge import Centrifuge
        from pylabrobot.centrifuge.chatterbox import CentrifugeChatterboxBackend
        from pylabrobot.heating_shaking import HeaterShaker, HeaterShakerChatterboxBackend
        from pylabrobot.liquid_handling import LiquidHandler
        from pylabrobot.liquid_handling.backends import LiquidHandlerChatterboxBackend
        from pylabrobot.plate_reading import PlateReader, PlateReaderChatterboxBackend
        from pylabrobot.resources import (
            PLT_CAR_L5AC_A00,
            TIP_CAR_480_A00,
            Coordinate,
            STARLetDeck,
            cor_96_wellplate_360uL_Fb,
            hamilton_96_tiprack_1000uL_filter,
        )
        from pylabrobot.temperature_controlling import (
            TemperatureController,
            TemperatureControllerChatterboxBackend,
        )

        deck = STARLetDeck()
        tip_carrier = TIP_CAR_480_A00(name="tip_carrier")
        tip_carrier[0] = hamilton_96_tiprack_1000uL_filter(name="tips")
        plate_carrier = PLT_CAR_L5AC_A00(name="plate_carrier")
        plate_carrier[0] = cor_96_wellplate_360uL_Fb(name="source_plate")
        deck.assign_child_resource(tip_carrier, rails=3)
        deck.assign_child_resource(plate_carrier, rails=10)
        reader = PlateReader(
            name="plate_reader", size_x=150.0, size_y=120.0, size_z=80.0, backend=PlateReaderChatterboxBackend()
        )
        reader.assign_child_resource(cor_96_wellplate_360uL_Fb(name="assay_plate"))
        return [
            (
                "liquid_handler",
                "pylabrobot.liquid_handling.LiquidHandler",
                LiquidHandler(backend=LiquidHandlerChatterboxBackend(num_channels=8), deck=deck),
            ),
            (
                "heater_shaker",
                "pylabrobot.heating_shaking.HeaterShaker",
                HeaterShaker(
                    name="heater_shaker", size_x=147.0, size_y=104.0, size_z=116.0,
                    backend=HeaterShakerChatterboxBackend(), child_location=Coordinate(10.0, 10.0, 100.0),
                ),
            ),
            ("plate_reader", "pylabrobot.plate_reading.PlateReader", reader),
            (
                "incubator_block",
                "pylabrobot.temperature_controlling.TemperatureController",
                TemperatureController(
                    name="incubator_block", size_x=128.0, size_y=86.0, size_z=90.0,
                    backend=TemperatureControllerChatterboxBackend(dummy_temperature=22.0),
                    child_location=Coordinate(0.0, 0.0, 90.0),
                ),
            ),
            (
                "centrifuge",
                "pylabrobot.centrifuge.Centrifuge",
                Centrifuge(backend=CentrifugeChatterboxBackend(), name="centrifuge",
                           size_x=300.0, size_y=400.0, size_z=300.0),
            ),
        ]


def demo_workcell(name: str = "demo") -> dict[str, Any]:
    """The demo workcell document, from the machines' own ``serialize()``."""
    return {
        "workcell": name,
        "description": "Simulated (chatterbox) PyLabRobot machines for the expwatch demo and tests.",
        "devices": [
            {"name": device_name, "class": class_path, "data": machine.serialize()}
            for device_name, class_path, machine in demo_machines()
        ],
    }


def write_demo_workcell(path: Path = DEMO_WORKCELL) -> Path:
    """(Re)generate the shipped demo workcell file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_workcell(demo_workcell()))
    return path
