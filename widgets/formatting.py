"""Small text helpers shared by the widgets (sizes, bars, status labels; ages and durations from ``state.durations``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from rich.color import Color, ColorParseError
from rich.text import Text

from state.durations import age, duration, seconds_to_change
from state.verdict import Liveness, StaleVerdict, is_stale

#: Line glyphs, not full blocks: bars on adjacent rows stay apart where a font fills the whole
#: line height (a browser through textual-serve), and heavy against light reads without colour.
BAR_FULL = "━"
BAR_EMPTY = "╌"
SPARK = "▁▂▃▄▅▆▇█"

#: Status -> (symbol, theme colour). The symbol keeps statuses readable without colour.
STATUS_LOOK: dict[str, tuple[str, str]] = {
    "initialised": ("○", "$text-muted"),
    "running": ("●", "$accent"),
    "completed": ("✓", "$success"),
    "aggregated": ("◆", "$success"),
    "failed": ("✗", "$error"),
    "interrupted": ("‖", "$warning"),
    "stale": ("†", "$error"),
    "dead": ("†", "$error"),
    "unknown": ("?", "$warning"),
    "stopped": ("■", "$text-muted"),
    "broken": ("!", "$error"),
    "pending": ("·", "$text-muted"),
}


_FALLBACK = {"text-muted": "dim", "text": ""}


def theme_colours(variables: Mapping[str, str]) -> dict[str, str]:
    """``$name`` -> a Rich style for the theme variables the widgets use.

    Values that are not plain colours (``auto 60%``) fall back to a neutral style.
    """
    out = {}
    for name in ("success", "error", "warning", "accent", "text-muted", "text"):
        value = variables.get(name, "")
        try:
            Color.parse(value)
        except ColorParseError:
            value = _FALLBACK.get(name, "")
        out[f"${name}"] = value
    return out


def clock_time(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "–"
    local = then.astimezone(now.tzinfo) if now.tzinfo else then
    if local.date() == now.date():
        return local.strftime("%H:%M")
    return local.strftime("%m-%d")


def clock_time_change(now: datetime) -> float:
    """Seconds until a ``clock_time`` may read differently: at the next midnight (today's times
    are written as hours, other days' as dates)."""
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(0.0, (midnight - now).total_seconds())


def durations_change(now: Iterable[float | None], later: Iterable[float | None]) -> float | None:
    """Seconds until one of several ``duration`` texts reads differently, given their lengths now
    and one second later (ages, elapsed times and ETAs grow linearly with the clock, each at its
    own rate); None when none moves."""
    dues = [seconds_to_change(a, b - a) for a, b in zip(now, later) if a is not None and b is not None]
    return min((d for d in dues if d is not None), default=None)


def bar(fraction: float | None, width: int) -> str:
    if fraction is None or width <= 0:
        return " " * max(0, width)
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    return BAR_FULL * filled + BAR_EMPTY * (width - filled)


def sparkline(values: list[float | None] | tuple[float | None, ...], width: int, top: float = 100.0) -> str:
    shown = list(values)[-width:]
    out = []
    for v in shown:
        if v is None:
            out.append(" ")
        else:
            level = min(len(SPARK) - 1, max(0, int(v / top * (len(SPARK) - 1) + 0.5))) if top else 0
            out.append(SPARK[level])
    return "".join(out).rjust(width)


def nbytes(value: int | None) -> str:
    if value is None:
        return "n/a"
    units = ["B", "K", "M", "G", "T"]
    size = float(value)
    for unit in units:
        if size < 1024 or unit == units[-1]:
            return f"{size:.0f}{unit}" if unit in ("B", "K") or size >= 10 else f"{size:.1f}{unit}"
        size /= 1024
    return f"{value}B"


def energy(joules: float | None) -> str:
    if joules is None:
        return "–"
    if joules < 1000:
        return f"{joules:.0f} J"
    if joules < 1_000_000:
        return f"{joules / 1000:.1f} kJ"
    return f"{joules / 3.6e6:.2f} kWh"


def number(value: float | None, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def status_text(
    status: str, verdict: StaleVerdict | None = None, *, colours: dict[str, str] | None = None, word: str | None = None
) -> Text:
    """``● running``, or ``✗ STALE`` for a running experiment whose owner is dead.

    ``word`` is the file's own status word where it says more than ``status``
    (a study's ``circuit_breaker``): drawn with ``status``'s symbol and colour.
    """
    shown = "stale" if is_stale(status, verdict) else status
    symbol, colour = STATUS_LOOK.get(shown, ("?", "$text"))
    label = "STALE" if shown == "stale" else (word or status)
    style = (colours or {}).get(colour, "")
    if shown == "stale":
        style = f"bold {style}".strip()
    return Text(f"{symbol} {label}", style=style)


def verdict_text(status: str, verdict: StaleVerdict | None) -> str:
    if verdict is None:
        return "–"
    if status != "running" and verdict.liveness is Liveness.DEAD:
        return "exited"
    return {"alive": "alive", "dead": "dead", "unknown": "unknown"}[verdict.liveness.value]


def host_header(name: str) -> Text:
    """The line over one fleet host's GPUs or devices."""
    return Text(f"── {name}", style="bold")


__all__ = [
    "STATUS_LOOK", "age", "bar", "clock_time", "clock_time_change", "duration", "durations_change", "energy", "host_header", "nbytes", "number", "sparkline",
    "status_text", "theme_colours", "verdict_text",
]
