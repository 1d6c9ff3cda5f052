"""Lab device snapshots that a runner publishes and the dashboard reads.

The runner that owns a workcell writes one snapshot file per workcell into
``<state dir>/.expwatch/devices/<workcell>.json``; the dashboard only reads it.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEVICE_SNAPSHOT_SCHEMA = "expwatch.devices/1"


class DeviceStatus(str, Enum):
    """Device status, with the vocabulary PyLabPraxis uses."""

    OFFLINE = "offline"
    INITIALIZING = "initializing"
    AVAILABLE = "available"
    IN_USE = "in_use"
    ERROR = "error"


class DeviceState(BaseModel):
    """One lab device as last seen by its owning runner."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: str
    backend: str
    status: DeviceStatus = DeviceStatus.OFFLINE
    details: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    updated_at: datetime


class DeviceSnapshot(BaseModel):
    """All devices of one workcell, with who owns them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str = Field(default=DEVICE_SNAPSHOT_SCHEMA, alias="schema")
    workcell: str
    experiment_id: str | None = None
    owner_pid: int | None = None
    taken_at: datetime
    devices: list[DeviceState] = Field(default_factory=list)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, by_alias=True)
