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


def age(now: datetime, then: datetime | None, *, missing: str = MISSING) -> str:
    """How long ago ``then`` was at ``now`` (``missing`` when it was never recorded)."""
    if then is None:
        return missing
    return duration((now - then).total_seconds())


__all__ = ["MISSING", "age", "duration"]
