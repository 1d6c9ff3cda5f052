"""Where the inspector's reads come from: one interface for a state directory and any other source.

The inspector reads one experiment, asks cheaply whether it changed, and reads
the slower extras (verdict, journal, step checks) on their own schedule. A
state directory does that with ``read_snapshot``, a ``stat`` and
``ExtrasReader``; a source of another kind (an MLtraq database) provides its
own reader with the same three calls.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from state.inspection.extras import Extras, ExtrasReader, ResumeCommand, VerdictProvider
from state.inspection.snapshot import Snapshot, read_snapshot, stat_version
from state.store import StateStore


class SnapshotReader(Protocol):
    """Reads one source's experiments for the inspector (called from its worker thread)."""

    @property
    def base(self) -> Path:
        """The directory relative paths are shown against."""
        ...

    def read(self, key: str, *, on_preview: Callable[[Snapshot], bool] | None = None) -> Snapshot:
        """The experiment in full; every failure is the snapshot's ``reason``, never an exception."""
        ...

    def changed(self, snap: Snapshot) -> bool:
        """Whether what ``snap`` was read from may have changed since (cheap: a stat, a pragma)."""
        ...

    def extras(self, snap: Snapshot) -> Extras: ...


class StoreSnapshotReader:
    """A state directory's experiment files, as the inspector has always read them."""

    def __init__(self, store: StateStore, verdict_provider: VerdictProvider | None = None, resume_command: ResumeCommand | None = None):
        self.store = store
        self._extras = ExtrasReader(store, verdict_provider, resume_command)

    @property
    def base(self) -> Path:
        return self._extras.base

    def read(self, key: str, *, on_preview: Callable[[Snapshot], bool] | None = None) -> Snapshot:
        return read_snapshot(self.store, key, on_preview=on_preview)

    def changed(self, snap: Snapshot) -> bool:
        return stat_version(snap.path) != snap.version

    def extras(self, snap: Snapshot) -> Extras:
        return self._extras.read(snap)


__all__ = ["SnapshotReader", "StoreSnapshotReader"]
