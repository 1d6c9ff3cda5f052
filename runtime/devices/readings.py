"""Readings of a machine's own state getters (temperatures, door, tips, plate), as JSON values.

Readings are not commands: the session takes them quietly (what a simulated
backend prints for them is not logged) and a getter that fails reads None
with the reason, never an error status.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

async def machine_details(machine: Any) -> dict[str, Any]:
    """What the machine's own state getters say; a getter that fails reads None, with the reason."""
    from pylabrobot.centrifuge import Centrifuge
    from pylabrobot.liquid_handling import LiquidHandler
    from pylabrobot.plate_reading import PlateReader
    from pylabrobot.temperature_controlling import TemperatureController

    details: dict[str, Any] = {}

    async def attempt(key: str, read: Callable[[], Any]) -> None:
        try:
            value = read()
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            details[key] = None
            details["reading_error"] = f"{key}: {type(exc).__name__}: {exc}"
            return
        details[key] = value

    if isinstance(machine, TemperatureController):
        await attempt("temperature_c", machine.get_temperature)
        details["target_c"] = machine.target_temperature
    if isinstance(machine, Centrifuge):
        details["door_open"] = machine.door_open
        bucket = machine.at_bucket
        details["at_bucket"] = bucket.name if bucket is not None else None
    if isinstance(machine, LiquidHandler):
        head = getattr(machine, "head", {}) or {}
        details["channels"] = len(head) or getattr(machine.backend, "num_channels", None)
        details["tips_mounted"] = sum(1 for t in head.values() if t.has_tip)
        head96 = getattr(machine, "head96", {}) or {}
        if head96:
            details["head96_tips_mounted"] = sum(1 for t in head96.values() if t.has_tip)
    if isinstance(machine, PlateReader):
        plates = [c.name for c in machine.children]
        details["plate"] = plates[0] if plates else None
    return {k: _jsonable(v) for k, v in details.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


TRANSIENT_DETAILS = ("command", "reading_error")
"""Details that only hold until the next reading."""
