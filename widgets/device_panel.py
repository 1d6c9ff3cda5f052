"""Lab devices as their owning runners last published them (never opened from here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text

from state.device_status import DeviceStatus
from widgets import formatting as fmt
from widgets.text_panel import TextPanel

if TYPE_CHECKING:
    from state.devices import DeviceSnapshot

_LOOK = {
    DeviceStatus.AVAILABLE: ("✓", "$success"),
    DeviceStatus.IN_USE: ("●", "$accent"),
    DeviceStatus.INITIALIZING: ("…", "$warning"),
    DeviceStatus.ERROR: ("✗", "$error"),
    DeviceStatus.OFFLINE: ("○", "$text-muted"),
}


class DevicePanel(TextPanel):

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("no lab devices published", id=id)
        self.border_title = "Devices"

    def show(self, snapshots: Sequence[DeviceSnapshot], errors: Sequence[str], now: datetime) -> None:
        self.show_text(render_devices(snapshots, errors, fmt.theme_colours(self.app.theme_variables), now))


def _details(details: Mapping[str, object]) -> str:
    parts = []
    for key, value in details.items():
        if isinstance(value, float):
            value = f"{value:.1f}"
        parts.append(f"{key}={value}")
    return " ".join(parts)


def render_devices(
    snapshots: Sequence[DeviceSnapshot], errors: Sequence[str], colours: Mapping[str, str], now: datetime
) -> Text:
    out = Text(no_wrap=True, overflow="ellipsis")
    if not snapshots and not errors:
        return Text("no lab devices published", style=colours.get("$text-muted", ""))
    first = True
    for snap in snapshots:
        for dev in snap.devices:
            if not first:
                out.append("\n")
            first = False
            symbol, colour = _LOOK.get(dev.status, ("?", "$text"))
            out.append(f"{symbol} ", style=colours.get(colour, ""))
            out.append(f"{dev.name:<15.15} ", style="bold")
            out.append(f"{dev.status.value:<10} ", style=colours.get(colour, ""))
            detail = dev.error if dev.error else _details(dev.details)
            updated = dev.updated_at if dev.updated_at.tzinfo else dev.updated_at.astimezone()
            out.append(f"{fmt.age(now, updated):>5} ", style=colours.get("$text-muted", ""))
            out.append(detail, style=colours.get("$error", "") if dev.error else "")
    for error in errors:
        if not first:
            out.append("\n")
        first = False
        out.append(f"! unreadable device snapshot {error}", style=colours.get("$error", ""))
    return out
