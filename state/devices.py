"""Lab device snapshots that a runner publishes and the dashboard reads.

The runner that owns a workcell writes one snapshot file per workcell into
``<state dir>/.expwatch/devices/<workcell>.json``; the dashboard only reads it.
"""

from __future__ import annotations

import errno
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from state.device_status import DeviceStatus
from state.sidecar import read_regular
from state.timestamps import Timestamp

DEVICE_SNAPSHOT_SCHEMA = "expwatch.devices/1"
#: A workcell's snapshot is a few KiB; anything this big is not one (a sparse file, a device).
MAX_DEVICE_SNAPSHOT_BYTES = 4 * 1024 * 1024

_log = logging.getLogger(__name__)


class DeviceState(BaseModel):
    """One lab device as last seen by its owning runner."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: str
    backend: str
    status: DeviceStatus = DeviceStatus.OFFLINE
    details: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    updated_at: Timestamp


class DeviceSnapshot(BaseModel):
    """All devices of one workcell, with who owns them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str = Field(default=DEVICE_SNAPSHOT_SCHEMA, alias="schema")
    workcell: str
    experiment_id: str | None = None
    owner_pid: int | None = None
    taken_at: Timestamp
    devices: list[DeviceState] = Field(default_factory=list)
    host: str | None = Field(default=None, exclude=True)
    """The fleet host it came from: set by the hub reader from the key it read (whatever the text
    says), never written; None for this host's own snapshots."""

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, by_alias=True)


_SAFE_WORKCELL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def valid_workcell_name(name: object) -> bool:
    """A workcell name is also its snapshot's file name: letters, digits, ``._-``."""
    return isinstance(name, str) and bool(_SAFE_WORKCELL.match(name)) and ".." not in name


def device_snapshot_path(devices_dir: Path, workcell: str) -> Path:
    if not valid_workcell_name(workcell):
        raise ValueError(f"invalid workcell name {workcell!r}: use letters, digits, '.', '_' and '-'")
    return devices_dir / f"{workcell}.json"


def read_device_snapshots(
    devices_dir: Path, *, on_error: Callable[[Path, str], None] | None = None
) -> list[DeviceSnapshot]:
    """Every readable snapshot in ``devices_dir``, sorted by workcell.

    A file that cannot be read or validated is reported through ``on_error``
    (default: a logged warning) and left out; a missing directory means no
    devices. Only reads: safe for the dashboard at any time.
    """
    report = on_error or (lambda path, reason: _log.warning("device snapshot %s: %s", path, reason))
    try:
        paths = sorted(p for p in devices_dir.iterdir() if p.suffix == ".json")
    except FileNotFoundError:
        return []
    except OSError as exc:
        report(devices_dir, f"cannot list: {exc}")
        return []
    found: list[DeviceSnapshot] = []
    for path in paths:
        try:
            data, _ = read_regular(path, MAX_DEVICE_SNAPSHOT_BYTES, follow=False)
            if len(data) > MAX_DEVICE_SNAPSHOT_BYTES:
                raise ValueError(f"larger than {MAX_DEVICE_SNAPSHOT_BYTES // 1024**2} MiB")
            snapshot = DeviceSnapshot.model_validate_json(data)
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            report(path, _short_reason(exc))
            continue
        if snapshot.schema_ != DEVICE_SNAPSHOT_SCHEMA:
            report(path, f"unknown schema {snapshot.schema_!r}")
            continue
        found.append(snapshot)
    found.sort(key=lambda s: s.workcell)
    return found


def _short_reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "document"
        return f"invalid snapshot ({exc.error_count()} errors; first at {where}: {first.get('msg')})"
    if isinstance(exc, OSError):
        return "a symlink (not followed)" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
    return f"{type(exc).__name__}: {exc}"
