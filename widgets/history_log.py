"""An experiment's history: status transitions from the file and actions from the audit journal.

History only grows, so an update that extends the previous rows appends just
the new ones and the cursor stays where the reader left it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import DataTable


@dataclass(frozen=True, slots=True)
class HistoryRow:
    at: str
    """When, as text (sortable ISO form)."""
    source: str
    """``status`` (the file's own history) or ``journal`` (expwatch's audit journal)."""
    change: str
    who: str
    why: str = ""


class HistoryLog(DataTable[str | Text]):
    """One row per transition or journalled action, oldest first."""

    DEFAULT_CSS = """
    HistoryLog {
        height: 1fr;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self._rows: tuple[HistoryRow, ...] = ()

    @property
    def entries(self) -> tuple[HistoryRow, ...]:
        return self._rows

    def on_mount(self) -> None:
        self._ensure_columns()

    def _ensure_columns(self) -> None:
        if not self.columns:
            self.add_columns("when", "source", "change", "who", "why")

    def set_rows(self, rows: Sequence[HistoryRow]) -> None:
        rows = tuple(rows)
        if rows == self._rows:
            return
        self._ensure_columns()
        old = self._rows
        cursor = None
        if rows[: len(old)] != old:
            cursor = self.cursor_row
            self.clear()
            old = ()
        for n, row in enumerate(rows[len(old):], start=len(old)):
            source = Text(row.source, style="dim" if row.source == "journal" else "")
            self.add_row(row.at, source, row.change, row.who, row.why, key=str(n))
        self._rows = rows
        if cursor is not None and rows:
            self.move_cursor(row=min(cursor, len(rows) - 1), animate=False)


__all__ = ["HistoryLog", "HistoryRow"]
