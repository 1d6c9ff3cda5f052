"""The status words a lab device can have, apart from the snapshot models that carry them.

The dashboard's device panel maps each status to a sign and a colour when it is built, before
any snapshot exists; the snapshot models (``state.devices``) need pydantic, which the first
screen does not, so the enum lives here and ``state.devices`` re-exports it.
"""

from __future__ import annotations

from enum import Enum


class DeviceStatus(str, Enum):
    """Device status, with the vocabulary PyLabPraxis uses."""

    OFFLINE = "offline"
    INITIALIZING = "initializing"
    AVAILABLE = "available"
    IN_USE = "in_use"
    ERROR = "error"
