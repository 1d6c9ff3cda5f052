"""The table of an experiment's runs: only the visible rows are ever rendered.

A ``DataTable`` measures every cell of every row it is given (about 0.25 ms a
row here), so 10,000 runs would take seconds to appear and again after every
filter. Here the rows are plain strings prepared off the event loop
(``build_run_table`` is pure and thread-safe), column widths come from string
lengths, and the ``VirtualTable`` underneath styles just the lines on screen.
Filtering hands the table the matching keys; the cursor follows its row by key
through filters and reloads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from datetime import datetime
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType

from state.text import printable
from widgets.virtual_table import Cell, Column, VirtualTable

#: Widest a column may grow; longer cells end in an ellipsis.
MAX_COLUMN_WIDTH = 32
#: How many param and field columns to show at most (the rest are in the run detail).
MAX_PARAM_COLUMNS = 6
MAX_FIELD_COLUMNS = 4
COLUMN_GAP = 2


@dataclass(frozen=True, slots=True)
class TableRow:
    key: str
    status: str
    cells: tuple[str, ...]


@dataclass(frozen=True)
class RunTableData:
    """Everything the table shows, prepared in a worker thread."""

    columns: tuple[Column, ...] = ()
    rows: tuple[TableRow, ...] = ()
    status_column: int = 0

    @cached_property
    def search(self) -> tuple[str, ...]:
        """Per row, the lower-cased text the filter matches against (built on first use)."""
        return tuple("\t".join(row.cells).lower() for row in self.rows)

    @classmethod
    def from_rows(
        cls, labels: Sequence[str], rows: Sequence[TableRow], *, status_column: int = 0
    ) -> RunTableData:
        widths = []
        for i, label in enumerate(labels):
            column = [row.cells[i] for row in rows]
            if all(map(str.isascii, column)):
                width = max(map(len, column), default=0)
            else:
                width = max(map(cell_width, column), default=0)
            widths.append(min(max(width, cell_width(label)), MAX_COLUMN_WIDTH))
        columns = tuple(Column(str(i), label, width) for i, (label, width) in enumerate(zip(labels, widths)))
        return cls(columns, tuple(rows), status_column)


def cell_width(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def format_value(value: Any) -> str:
    """One-line, terminal-safe text for a param or field value."""
    kind = type(value)
    if kind is str:
        return value if value.isprintable() else printable(value)
    if kind is int:
        return str(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (int, str)):
        return printable(str(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return printable(json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False))


def _ordered_keys(dicts: Iterable[Any], limit: int, prefer: Sequence[str] = ()) -> list[str]:
    """The first ``limit`` distinct keys, ``prefer`` first, then in order of appearance."""
    seen = dict.fromkeys(prefer)
    seen.update(dict.fromkeys(chain.from_iterable(d for d in dicts if type(d) is dict)))
    return [str(k) for k in seen][:limit]


def build_run_table(runs: Sequence[Any], *, grid_keys: Sequence[str] = ()) -> RunTableData:
    """Rows for expwatch runs (decoded JSON objects): status, id, process, attempt, step, params, key fields, error.

    Works on the decoded JSON rather than validated models so the table can be
    shown before a big file has been validated; anything malformed shows as
    ``?`` rather than failing (validation reports it). Row keys are the run
    ids, made unique, in file order. Param columns follow the grid's order;
    field columns are the first few field names seen. Pure and thread-safe.
    """
    params = _ordered_keys((r.get("params") for r in runs if type(r) is dict), MAX_PARAM_COLUMNS, grid_keys)
    fields = _ordered_keys((r.get("fields") for r in runs if type(r) is dict), MAX_FIELD_COLUMNS)
    labels = ["status", "run", "proc", "try", "step", *params, *fields, "error"]
    rows = []
    seen: set[str] = set()
    fmt = format_value
    empty: dict[str, Any] = {}
    for n, run in enumerate(runs):
        if type(run) is not dict:
            run = empty
        run_id = run.get("id_run")
        run_id = fmt(run_id) if type(run_id) is str else f"?{n}"
        key = run_id if run_id not in seen else f"{run_id}@{n}"
        seen.add(key)
        status = fmt(run.get("status", "pending"))
        p = run.get("params")
        f = run.get("fields")
        p = p if type(p) is dict else empty
        f = f if type(f) is dict else empty
        exc = run.get("exception")
        error = ""
        if type(exc) is dict:
            error = fmt(f"{exc.get('type', '?')}: {exc.get('message', '')}")
        cells = [status, run_id, fmt(run.get("process_index")), fmt(run.get("attempt", 0)), fmt(run.get("current_step"))]
        for source, keys in ((p, params), (f, fields)):
            for k in keys:
                v = source.get(k)
                cells.append(v if type(v) is str and v.isprintable() else fmt(v))
        cells.append(error)
        rows.append(TableRow(key, status, tuple(cells)))
    return RunTableData.from_rows(labels, rows)


def build_legacy_run_table(completed: Mapping[str, str], failed: Mapping[str, str]) -> RunTableData:
    """Rows for llenergymeasure's ``completed_runs`` / ``failed_runs`` maps."""
    rows = [TableRow(f"completed:{k}", "completed", ("completed", printable(k), format_value(v))) for k, v in completed.items()]
    rows += [TableRow(f"failed:{k}", "failed", ("failed", printable(k), format_value(v))) for k, v in failed.items()]
    return RunTableData.from_rows(["status", "run", "result"], rows)


class RunTable(VirtualTable[TableRow]):
    """Runs, one per line, under a fixed header: a ``VirtualTable`` with a text filter.

    Columns come from the data (``RunTableData``), all kept: a table wider than
    the terminal scrolls sideways. The filter only changes which keys the
    table shows, so the cursor follows its run through filters and reloads.
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select", "Open run")]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "run-table--completed",
        "run-table--failed",
        "run-table--running",
        "run-table--pending",
        "run-table--ended",
    }

    DEFAULT_CSS = """
    RunTable {
        overflow-x: auto;
    }
    RunTable > .run-table--completed { color: $success; }
    RunTable > .run-table--failed { color: $error; text-style: bold; }
    RunTable > .run-table--running { color: $accent; text-style: bold; }
    RunTable > .run-table--pending { color: $text-muted; }
    RunTable > .run-table--ended { color: $warning; }
    """

    def __init__(
        self,
        *,
        empty_text: str = "no runs",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__((), self._cells, empty_text=empty_text, column_gap=COLUMN_GAP, name=name, id=id, classes=classes)
        self.no_runs_text = empty_text
        self._data = RunTableData()
        self._filter = ""
        #: What a run the file calls running is shown as while its experiment is not proven alive
        #: ("dead", "stopped", "unknown"); None: as the file says.
        self.running_as: str | None = None

    @property
    def data(self) -> RunTableData:
        return self._data

    @property
    def total_rows(self) -> int:
        """All runs; ``row_count`` is the runs the filter lets through."""
        return len(self._data.rows)

    @property
    def filter_text(self) -> str:
        return self._filter

    def set_data(self, data: RunTableData) -> None:
        """Show new rows; the cursor stays on the same run and the scroll stays put."""
        if data.columns != self._data.columns:
            self.set_columns(data.columns)
        self._data = data
        self.replace_rows({row.key: row for row in data.rows}, self._matching())

    def set_running_as(self, label: str | None) -> None:
        """Show the runs the file calls running as ``label`` (None: as running); never more alive than the verdict."""
        if label != self.running_as:
            self.running_as = label
            self.refresh()

    def set_filter(self, text: str) -> None:
        """Show only rows containing every whitespace-separated term (case-insensitive)."""
        if text == self._filter:
            return
        self._filter = text
        self.reorder(self._matching())
        self.scroll_to(y=max(0, self.cursor_index - self._body_height // 2), animate=False)

    def _matching(self) -> list[str]:
        rows = self._data.rows
        self.empty_text = "no runs match the filter" if rows else self.no_runs_text
        terms = self._filter.lower().split()
        if not terms:
            return [row.key for row in rows]
        return [rows[i].key for i, text in enumerate(self._data.search) if all(t in text for t in terms)]

    def _cells(self, row: TableRow) -> list[Cell]:
        """The row's cells, the status one coloured by its ``run-table--<status>`` class."""
        cells: list[Cell] = list(row.cells)
        if cells:
            n = self._data.status_column
            if row.status == "running" and self.running_as is not None and row.cells[n] == "running":
                style = self.get_component_rich_style("run-table--ended", default=Style.null(), partial=True)
                cells[n] = Text(self.running_as, style=style)
                return cells
            style = self.get_component_rich_style(f"run-table--{row.status}", default=Style.null(), partial=True)
            cells[n] = Text(row.cells[n], style=style)
        return cells


__all__ = [
    "RunTable",
    "RunTableData",
    "TableRow",
    "build_legacy_run_table",
    "build_run_table",
    "format_value",
    "printable",
]
