"""Readings of a machine's own state getters (temperatures, door, tips, plate), as JSON values.

Readings are not commands: the session takes them quietly (what a simulated
backend prints for them is not logged) and a getter that fails reads None
with the reason, never an error status. A stopped machine is read without
its getters (``live=False``): what PyLabRobot cleared on stop (a target
temperature) reads as cleared, and nothing is asked of a closed backend.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

_SHAKING_GETTERS = (("backend", "get_is_shaking"), (None, "is_shaking_enabled"))
"""Where a backend can tell whether it shakes (Hamilton heater shakers, Inheco incubator shakers)."""


def _no_argument_getter(machine: Any, owner: str | None, name: str) -> Callable[[], Any] | None:
    target = getattr(machine, owner) if owner else machine
    getter = getattr(target, name, None)
    if not callable(getter):
        return None
    try:
        required = [p for p in inspect.signature(getter).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    except (TypeError, ValueError):
        return None
    return None if required else getter


async def machine_details(machine: Any, *, live: bool = True) -> dict[str, Any]:
    """What the machine's own state getters say; a getter that fails reads None, with the reason.

    With ``live=False`` only what the machine object holds is read, no getter is called.
    """
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
        if live:
            await attempt("temperature_c", machine.get_temperature)
        details["target_c"] = machine.target_temperature
    if live:
        for owner, name in _SHAKING_GETTERS:
            getter = _no_argument_getter(machine, owner, name)
            if getter is not None:
                await attempt("shaking", getter)
                break
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
