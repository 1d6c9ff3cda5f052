"""Naive local times made aware, as ``astimezone()`` does, at a fraction of its cost.

llenergymeasure writes naive local times; every reader makes them aware with
``astimezone()``, which asks the C library for the local zone twice per value
(six values a file, a tenth of a cold scan). The zone of a wall-clock hour is
looked up once and reused for every time in that hour, where the hour's first
and last microsecond agree (a transition inside the hour: each value is
converted on its own, as before). Aware values share one tzinfo per offset:
``astimezone()`` and the JSON parser make a new one (and a name string) for
each value, which was 100 MB across 100,000 files.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone, tzinfo

_TZ_CACHE: dict[tuple[timedelta | None, str | None], tzinfo] = {}
#: (year, month, day, hour) of a wall-clock time -> its zone, or None where no one zone serves the hour.
_HOUR_ZONES: dict[tuple[int, int, int, int], tzinfo | None] = {}
_zone_names: object = None
"""``time.tzname`` when ``_HOUR_ZONES`` was filled: ``time.tzset()`` makes a new tuple."""


_UNKNOWN = object()


class DateOutOfRange(ValueError):
    """Years 1 and 9999: any shift of time zone would leave the range."""


def shared_tz(value: datetime) -> datetime:
    """``value`` (aware) with an equal tzinfo object shared by every value of that offset and name."""
    tz = value.tzinfo
    assert tz is not None
    ident = (tz.utcoffset(value), tz.tzname(value))
    shared = _TZ_CACHE.get(ident)
    if shared is None:
        if len(_TZ_CACHE) > 256:  # offsets are few; never let odd input grow this without bound
            _TZ_CACHE.clear()
        offset, name = ident
        if offset is None:
            shared = tz
        else:
            shared = timezone(offset, name) if name is not None else timezone(offset)
        _TZ_CACHE[ident] = shared
    return value if shared is tz else value.replace(tzinfo=shared)


def _hour_zone(value: datetime, hour: tuple[int, int, int, int]) -> tzinfo | None:
    """The shared zone ``astimezone()`` gives every time of ``value``'s wall-clock hour, if one does."""
    start = value.replace(minute=0, second=0, microsecond=0)
    end = value.replace(minute=59, second=59, microsecond=999_999)
    first, last = shared_tz(start.astimezone()), shared_tz(end.astimezone())
    # In a gap (a spring-forward hour) ``astimezone()`` moves the wall time too: no shortcut there.
    kept = first.replace(tzinfo=None) == start and last.replace(tzinfo=None) == end
    zone = first.tzinfo if kept and first.tzinfo is last.tzinfo else None
    if len(_HOUR_ZONES) > 65_536:
        _HOUR_ZONES.clear()
    _HOUR_ZONES[hour] = zone
    return zone


def aware(value: datetime | None) -> datetime | None:
    """``value`` made aware (naive is local time), its tzinfo shared; ``DateOutOfRange`` for years 1 and 9999.

    Equal, field for field and in its zone's offset and name, to
    ``value.astimezone()`` for a naive value.
    """
    if value is None:
        return None
    if not 1 < value.year < 9999:
        raise DateOutOfRange(f"date out of range ({value.isoformat()})")
    if value.tzinfo is not None:
        return shared_tz(value)
    global _zone_names
    if time.tzname is not _zone_names:  # TZ changed and ``time.tzset()`` ran: the old hours mean nothing now
        _HOUR_ZONES.clear()
        _zone_names = time.tzname
    hour = (value.year, value.month, value.day, value.hour)
    zone = _HOUR_ZONES.get(hour, _UNKNOWN)
    if zone is _UNKNOWN:
        zone = _hour_zone(value, hour)
    if zone is None or value.fold:
        return shared_tz(value.astimezone())
    return value.replace(tzinfo=zone)


def naive_local(value: datetime) -> datetime:
    """``value.astimezone().replace(tzinfo=None)``: an aware time as a naive local one.

    A value ``aware()`` made from a wall-clock hour it looked up comes back to
    that wall time without asking the C library again.
    """
    zone = value.tzinfo
    if (zone is not None and not value.fold and time.tzname is _zone_names
            and _HOUR_ZONES.get((value.year, value.month, value.day, value.hour)) is zone):
        return value.replace(tzinfo=None)
    return value.astimezone().replace(tzinfo=None)


#: "YYYY-MM-DDTHH" of a naive ISO time -> the offset ``isoformat()`` writes for every time of that
#: wall-clock hour, where one zone serves the whole hour (``_HOUR_ZONES``); filled by ``local_iso``.
_HOUR_SUFFIXES: dict[str, str] = {}
_suffix_names: object = None


def local_iso(text: str) -> tuple[str, str]:
    """(``naive_local(t).isoformat()``, ``t.isoformat()``) for ``t = aware(datetime.fromisoformat(text))``.

    ``text`` is a naive ``YYYY-MM-DDTHH:MM:SS[.ffffff]`` with minutes and seconds
    below 60, so whether it converts at all is decided by its hour. Where one zone
    serves that hour, converting is a no-op both ways: the texts are ``text`` (a
    zero fraction dropped, as ``isoformat()`` drops it) and ``text`` plus the
    hour's offset, with no ``datetime`` built. ``list --json`` writes six times a
    file this way. Raises what ``fromisoformat`` and ``aware`` raise.
    """
    global _suffix_names
    if time.tzname is not _suffix_names:
        _HOUR_SUFFIXES.clear()
        _suffix_names = time.tzname
    naive = text[:19] if text.endswith(".000000") else text
    suffix = _HOUR_SUFFIXES.get(text[:13])
    if suffix is not None:
        return naive, naive + suffix
    parsed = datetime.fromisoformat(text)
    value = aware(parsed)
    assert value is not None
    written = value.isoformat()
    # The hour as written, not as converted: a time in a gap comes back in another hour.
    zone = _HOUR_ZONES.get((parsed.year, parsed.month, parsed.day, parsed.hour))
    if zone is not None and zone is value.tzinfo:
        if len(_HOUR_SUFFIXES) > 65_536:
            _HOUR_SUFFIXES.clear()
        _HOUR_SUFFIXES[text[:13]] = written[len(naive):]
        return naive, written
    return naive_local(value).isoformat(), written
