"""The workcell's device status, copied into the experiment's state file by the coordinator.

The worker that owns the devices publishes their snapshot file; the
coordinator re-reads it only when its identity (inode, mtime, size) changed.
"""

from __future__ import annotations

import os
from pathlib import Path

from state.devices import DeviceSnapshot, DeviceState, device_snapshot_path


class DeviceMirror:
    def __init__(self, devices_dir: Path, workcell_name: str) -> None:
        self.path = device_snapshot_path(devices_dir, workcell_name)
        self._sig: tuple[int, int, int] | None = None

    def changed(self) -> list[DeviceState] | None:
        """The devices of a snapshot newer than the last one read; None when unchanged or unreadable."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        if sig == self._sig:
            return None
        try:
            snapshot = DeviceSnapshot.model_validate_json(self.path.read_bytes())
        except (OSError, ValueError):
            return None
        self._sig = sig
        return list(snapshot.devices)
