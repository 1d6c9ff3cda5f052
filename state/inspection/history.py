"""An experiment's history: status transitions from the file and actions from the audit journal.

Foreign formats cannot hold our history, so the journal (one file for the
whole state directory) is merged in by time; it is re-read only when its
version changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from state.inspection.display import local_time
from state.inspection.snapshot import Snapshot, stat_version
from state.journal import JournalEntry, journal_id
from state.record import FileVersion
from state.store import StateStore


@dataclass(frozen=True, slots=True)
class HistoryRow:
    at: str
    """When, as text (sortable ISO form)."""
    source: str
    """``status`` (the file's own history) or ``journal`` (expwatch's audit journal)."""
    change: str
    who: str
    why: str = ""


def _stamp(value: datetime) -> float:
    return value.timestamp() if value.tzinfo else value.astimezone().timestamp()


class HistoryReader:
    """History rows for one experiment at a time, with the journal cached by version."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._entries: tuple[FileVersion | None, tuple[JournalEntry, ...]] | None = None

    def journal_entries(self, experiment_id: str) -> tuple[JournalEntry, ...]:
        journal = self.store.journal
        version = stat_version(journal.path)
        if self._entries is None or self._entries[0] != version:
            self._entries = None
            self._entries = (version, tuple(journal.entries()) if version else ())
        return tuple(e for e in self._entries[1] if e.experiment == experiment_id)

    def history(self, snap: Snapshot) -> tuple[HistoryRow, ...]:
        """File transitions and journal actions, oldest first; undated journal lines last."""
        assert snap.model is not None
        dated: list[tuple[float, int, HistoryRow]] = []
        if snap.doc is not None:
            for n, h in enumerate(snap.doc.history):
                change = f"{h.from_status.value if h.from_status else '∅'} → {h.to.value}"
                dated.append((_stamp(h.at), n, HistoryRow(local_time(h.at), "status", change, h.who, h.why or "")))
        try:
            entries = self.journal_entries(journal_id(snap.model, snap.path))
        except (OSError, ValueError) as exc:  # a journal made a symlink, a device, a folder: say so
            entries = ()
            dated.append((float("inf"), 200_000, HistoryRow("", "journal", "journal not read", "", str(exc))))
        for n, e in enumerate(entries):
            try:
                at = datetime.fromisoformat(e.time)
            except ValueError:
                at = None
            change = f"{e.action}: {e.from_status or '∅'} → {e.to_status or '∅'}"
            row = HistoryRow(local_time(at) if at else e.time, "journal", change, f"{e.user}@{e.host}", e.reason or "")
            dated.append((_stamp(at) if at else float("inf"), 100_000 + n, row))
        dated.sort(key=lambda t: (t[0], t[1]))
        return tuple(row for _, _, row in dated)
