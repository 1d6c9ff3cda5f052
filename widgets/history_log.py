"""An experiment's history: status transitions from the file and actions from the audit journal.

History only grows, so an update that extends the previous rows appends just
the new ones and the cursor stays where the reader left it.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

from state.inspection.history import HistoryRow
from state.text import printable


LABELS = ("when", "source", "change", "who", "why")
MAX_WIDTH = 60


class HistoryLog(DataTable[Text]):
    """One row per transition or journalled action, oldest first.

    Cells are ``Text``, never ``str``: a DataTable parses strings as markup, and
    these come from files.
    """

    DEFAULT_CSS = """
    HistoryLog {
        height: 1fr;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self._rows: tuple[HistoryRow, ...] = ()
        self._widths: tuple[int, ...] = ()

    @property
    def entries(self) -> tuple[HistoryRow, ...]:
        return self._rows

    def set_rows(self, rows: Sequence[HistoryRow]) -> None:
        """Show these rows; appended rows are added alone while the columns still fit them.

        Column widths are computed here rather than measured by the table, so the
        first frame is already laid out.
        """
        rows = tuple(rows)
        if rows == self._rows:
            return
        widths = [cell_len(label) for label in LABELS]
        for row in rows:
            for i, cell in enumerate(_cells(row)):
                widths[i] = max(widths[i], min(MAX_WIDTH, cell_len(cell)))
        old = self._rows
        if tuple(widths) != self._widths or rows[: len(old)] != old:
            cursor = self.cursor_row
            self.clear(columns=True)
            for label, width in zip(LABELS, widths):
                self.add_column(label, width=width, key=label)
            self._widths = tuple(widths)
            old = ()
        else:
            cursor = None
        for n, row in enumerate(rows[len(old):], start=len(old)):
            when, source, change, who, why = _cells(row)
            self.add_row(
                Text(when),
                Text(source, style="dim" if source == "journal" else ""),
                Text(change),
                Text(who),
                Text(why),
                key=str(n),
            )
        self._rows = rows
        if cursor is not None and rows:
            self.move_cursor(row=min(cursor, len(rows) - 1), animate=False)


def _cells(row: HistoryRow) -> tuple[str, str, str, str, str]:
    """The row's texts, terminal-safe (they come from files and the journal)."""
    return (printable(row.at), row.source, printable(row.change), printable(row.who), printable(row.why))


__all__ = ["HistoryLog", "HistoryRow"]
