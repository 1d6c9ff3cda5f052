"""A hub row opened in the inspector: the state file its host published, and the experiment's shared run state.

The agent publishes each record's whole state file (the hash's ``doc``); it is
read here like a file (the state-file size limit, measured on the server
before anything is sent; parsed and validated by the same code), the verdict
stays on the main table, which has the host's. Nothing on the remote host's disk is looked at here: the
paths in a published document name files over there (step sources, traceback
files, the journal), so steps show as recorded and history as unavailable.

``run.shared`` comes from the hub's ``kv`` hash of that host and experiment
(``state.hub.shared``), each value checked on its own: one that is not JSON
(or too big) is named in the section's error, the others are still shown.
All of this runs in the inspector's worker thread, on a connection of its own.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from state.detect import MAX_STATE_FILE_BYTES
from state.hub.connection import HubError
from state.hub.schema import Hub
from state.hub.shared import HubSharedState
from state.inspection.extras import Extras
from state.inspection.snapshot import Snapshot, snapshot_of
from state.record import FileVersion
from state.text import printable

if TYPE_CHECKING:
    from state.sources.hub import HubSource

#: Keys whose value cannot be shown, named one by one in the section's error.
ERRORS_NAMED = 5


class HubSnapshotReader:
    """Reads one hub row for the inspector (the ``SnapshotReader`` calls)."""

    def __init__(self, source: HubSource) -> None:
        self.source = source
        self.hub = Hub(source.hub.address)

    @property
    def base(self) -> Path:
        """Paths in published documents are the host's: shown whole, never against a local directory."""
        return Path(self.source.location)

    def _where(self, key: str) -> tuple[str, str, str, Path] | None:
        entry = self.source.entries().get(key)
        target = self.source.target(entry) if entry is not None else None
        if entry is None or target is None:
            return None
        return (*target, entry.path)

    def read(self, key: str, *, on_preview: Callable[[Snapshot], bool] | None = None) -> Snapshot:
        where = self._where(key)
        if where is None:
            return Snapshot(key, Path(key), None, "", reason="no longer in the hub")
        host, source, file_key, path = where
        try:
            found = self.hub.read_document(self.hub.record_key(host, source, file_key), MAX_STATE_FILE_BYTES)
        except HubError as exc:
            return Snapshot(key, path, None, "", reason=str(exc))
        if found is None:
            return Snapshot(key, path, None, "", reason="no longer in the hub")
        raw_version, size, data = found
        version = FileVersion(0, int(raw_version) if raw_version.isdigit() else 0, size)
        if data is None:
            return Snapshot(key, path, version, "", size, reason=f"the published file is {size:,} bytes, over the "
                                                               f"{MAX_STATE_FILE_BYTES // 2**20} MiB limit")
        if not data:
            return Snapshot(key, path, version, "", reason=f"host {host} published no file text (unreadable there, or "
                                                           "over the agent's limit): only its summary row is known")
        return snapshot_of(key, path, version, data, local=False)

    def changed(self, snap: Snapshot) -> bool:
        where = self._where(snap.key)
        if where is None:
            return True
        host, source, file_key, _ = where
        try:
            found = self.hub.read_document(self.hub.record_key(host, source, file_key), 0)
        except HubError:
            return True
        return found is None or snap.version is None or found[0] != b"%020d" % snap.version.mtime_ns

    def extras(self, snap: Snapshot) -> Extras:
        entry = self.source.entries().get(snap.key)
        resume = resume_error = None
        doc = snap.doc
        if doc is not None and doc.resume is not None:
            resume = f"{shlex.join(doc.resume.argv)}   (on {entry.host if entry else '?'}, in {doc.resume.cwd})"
        elif snap.model is not None:
            resume_error = "the host's agent plans a resume (R)"
        shared: tuple[tuple[str, object], ...] = ()
        shared_error = None
        where = self._where(snap.key)
        if doc is not None and where is not None:
            shared, shared_error = self._shared(where[0], doc.experiment_id)
        return Extras(snap.version, None, None, resume, resume_error, (), (), shared, shared_error)

    def _shared(self, host: str, experiment_id: str) -> tuple[tuple[tuple[str, object], ...], str | None]:
        try:
            entries = HubSharedState(self.hub, host, experiment_id).read()
        except HubError as exc:
            return (), str(exc)
        bad = [e for e in entries if e.error is not None]
        error = None
        if bad:
            named = "; ".join(f"'{printable(e.key)}' {e.error}" for e in bad[:ERRORS_NAMED])
            error = named + (f"; and {len(bad) - ERRORS_NAMED} more" if len(bad) > ERRORS_NAMED else "")
        return tuple((e.key, e.value) for e in entries if e.error is None), error

    def close(self) -> None:
        self.hub.close()


__all__ = ["HubSnapshotReader"]
