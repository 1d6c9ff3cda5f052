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
    from state.devices import DeviceSnapshot, DeviceState

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


def ages_change_in(snapshots: Sequence[DeviceSnapshot], now: datetime) -> float | None:
    """Seconds until one of the devices' ages reads differently (None: no device)."""
    return fmt.durations_change(
        ((now - _aware(dev.updated_at)).total_seconds() for snap in snapshots for dev in snap.devices),
        ((now - _aware(dev.updated_at)).total_seconds() + 1.0 for snap in snapshots for dev in snap.devices),
    )


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.astimezone()


def _details(details: Mapping[str, object]) -> str:
    parts = []
    for key, value in details.items():
        if isinstance(value, float):
            value = f"{value:.1f}"
        elif value is None:
            value = "–"
        parts.append(f"{key}={value}")
    return " ".join(parts)


def render_devices(
    snapshots: Sequence[DeviceSnapshot], errors: Sequence[str], colours: Mapping[str, str], now: datetime
) -> Text:
    """One line per device; in a fleet (any snapshot from a hub host) grouped under a ``── host`` line,
    this host's own first."""
    if not snapshots and not errors:
        return Text("no lab devices published", style=colours.get("$text-muted", ""))
    lines: list[Text] = []
    fleet = any(snap.host is not None for snap in snapshots)
    hosts = list(dict.fromkeys(snap.host for snap in sorted(snapshots, key=lambda s: s.host is not None)))
    for host in hosts if fleet else [None]:
        if fleet:
            lines.append(fmt.host_header("this host" if host is None else host))
        lines += [_device_line(dev, colours, now) for snap in snapshots if not fleet or snap.host == host for dev in snap.devices]
    lines += [Text(f"! unreadable device snapshot {error}", style=colours.get("$error", "")) for error in errors]
    return Text("\n", no_wrap=True, overflow="ellipsis").join(lines)


def _device_line(dev: DeviceState, colours: Mapping[str, str], now: datetime) -> Text:
    out = Text(no_wrap=True, overflow="ellipsis")
    symbol, colour = _LOOK.get(dev.status, ("?", "$text"))
    out.append(f"{symbol} ", style=colours.get(colour, ""))
    out.append(f"{dev.name:<15.15} ", style="bold")
    out.append(f"{dev.status.value:<10} ", style=colours.get(colour, ""))
    detail = dev.error if dev.error else _details(dev.details)
    out.append(f"{fmt.age(now, _aware(dev.updated_at)):>5} ", style=colours.get("$text-muted", ""))
    out.append(detail, style=colours.get("$error", "") if dev.error else "")
    return out
