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


#: "YYYY-MM-DDTHH" of a naive ISO time -> (the offset ``isoformat()`` writes for every time of that
#: wall-clock hour, the hour's start in microseconds since the epoch), where one zone serves the
#: whole hour (``_HOUR_ZONES``); filled by ``_known_hour``.
_HOUR_TEXTS: dict[str, tuple[str, int]] = {}
_text_names: object = None
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def _known_hour(text: str) -> tuple[str, int] | None:
    """``text``'s hour from ``_HOUR_TEXTS`` (filled on first sight), or None where no one zone serves it.

    Raises what ``fromisoformat`` and ``aware`` raise: whether a time converts at all
    is decided by its hour, as minutes and seconds are below 60.
    """
    global _text_names
    if time.tzname is not _text_names:
        _HOUR_TEXTS.clear()
        _text_names = time.tzname
    known = _HOUR_TEXTS.get(text[:13])
    if known is not None:
        return known
    start = datetime.fromisoformat(text).replace(minute=0, second=0, microsecond=0)
    value = aware(start)
    assert value is not None
    zone = _HOUR_ZONES.get((start.year, start.month, start.day, start.hour))
    if zone is None or zone is not value.tzinfo:
        return None
    if len(_HOUR_TEXTS) > 65_536:
        _HOUR_TEXTS.clear()
    known = _HOUR_TEXTS[text[:13]] = (value.isoformat()[19:], (value - _EPOCH) // _MICROSECOND)
    return known


def local_iso(text: str) -> tuple[str, str]:
    """(``naive_local(t).isoformat()``, ``t.isoformat()``) for ``t = aware(datetime.fromisoformat(text))``.

    ``text`` is a naive ``YYYY-MM-DDTHH:MM:SS[.ffffff]`` with minutes and seconds
    below 60. Where one zone serves its hour, converting is a no-op both ways: the
    texts are ``text`` (a zero fraction dropped, as ``isoformat()`` drops it) and
    ``text`` plus the hour's offset, with no ``datetime`` built. ``list --json``
    writes six times a file this way. Raises what ``fromisoformat`` and ``aware`` raise.
    """
    naive = text[:19] if text.endswith(".000000") else text
    hour = _known_hour(text)
    if hour is not None:
        return naive, naive + hour[0]
    value = aware(datetime.fromisoformat(text))
    assert value is not None
    return naive_local(value).isoformat(), value.isoformat()


def local_timestamp(text: str) -> float:
    """``aware(datetime.fromisoformat(text)).timestamp()`` for ``text`` as ``local_iso`` takes it,
    counted from its hour's start where one zone serves the hour (the same float: both divide
    whole microseconds by a million)."""
    hour = _known_hour(text)
    if hour is None:
        value = aware(datetime.fromisoformat(text))
        assert value is not None
        return value.timestamp()
    fraction = int(text[20:26]) if len(text) > 19 else 0
    return (hour[1] + int(text[14:16]) * 60_000_000 + int(text[17:19]) * 1_000_000 + fraction) / 1_000_000
