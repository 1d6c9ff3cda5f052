"""One way to write a length of time, for every screen, command and verdict.

``42s``, ``3m07s``, ``2h00m``, ``4d03h``: two units at most, fixed width within a unit,
so a column of ages lines up and "2h00m" in the table reads the same as in a
verdict's reason or ``expwatch list``. Negative lengths (a clock ahead of ours)
are written as ``0s``: callers that mean the future say so in words.
"""

from __future__ import annotations

from datetime import datetime

MISSING = "–"


def duration(seconds: float | None) -> str:
    """``seconds`` as ``42s``, ``3m07s``, ``2h00m`` or ``4d03h``; ``–`` when unknown."""
    if seconds is None or seconds != seconds:
        return MISSING
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def seconds_to_change(seconds: float | None, rate: float) -> float | None:
    """How long until ``duration(seconds)`` reads differently while ``seconds`` grows by ``rate``
    every second of the clock (None: it never does, by the clock alone)."""
    if seconds is None or seconds != seconds or rate <= 0:
        return None
    if seconds < 0:
        left = 1 - seconds  # written "0s" until it reaches a whole second
    elif seconds < 3600:
        left = 1 - seconds % 1
    elif seconds < 86400:
        left = 60 - seconds % 60
    else:
        left = 3600 - seconds % 3600
    return left / rate


def age(now: datetime, then: datetime | None, *, missing: str = MISSING) -> str:
    """How long ago ``then`` was at ``now`` (``missing`` when it was never recorded)."""
    if then is None:
        return missing
    return duration((now - then).total_seconds())


__all__ = ["MISSING", "age", "duration", "seconds_to_change"]
