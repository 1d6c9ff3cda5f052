"""The one datetime type of expwatch's own documents: checked and made aware when read.

A file can hold any ISO date. Year 1 and year 9999 leave the range at the
first time-zone shift (``astimezone``, subtracting an aware "now"), and a
naive value cannot be compared with the aware ones around it; either used to
raise far from the reader, in a printer or a widget, and take the whole view
with it. Checked here, such a value is a validation error with its place
(``runs.3.started_at: date out of range``): the file is a broken row with
that reason, and nothing downstream meets it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator


def checked_time(value: datetime) -> datetime:
    """``value`` made aware (naive is local time, as llenergymeasure writes it), or ValueError."""
    if not 1 < value.year < 9999:
        raise ValueError(f"date out of range ({value.isoformat()})")
    return value if value.tzinfo is not None else value.astimezone()


Timestamp = Annotated[datetime, AfterValidator(checked_time)]

__all__ = ["Timestamp", "checked_time"]
