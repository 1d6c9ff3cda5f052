"""How paths and times from a file are written for a reader.

Shared by the reading (history rows, step locations) and the screen (the
Overview), so both spell a path or a time the same way.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path


def display_path(path: str | Path, base: Path) -> str:
    """A path as the reader wants it: relative to the project when inside it, ``~`` for home."""
    p = Path(path)
    if not p.is_absolute():
        return str(p)
    for root, prefix in ((base, ""), (Path.home(), "~/")):
        try:
            return prefix + str(p.relative_to(root))
        except ValueError:
            continue
    return str(p)


def local_time(value: datetime | None) -> str:
    """Seconds-precision local time; naive values are taken as already local."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone()
    return value.strftime("%Y-%m-%d %H:%M:%S")
