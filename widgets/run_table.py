"""A virtual table of an experiment's runs: only the visible rows are ever rendered.

A ``DataTable`` measures every cell of every row it is given (about 0.25 ms a
row here), so 10,000 runs would take seconds to appear and again after every
filter. Here the rows are plain strings prepared off the event loop
(``build_run_table`` is pure and thread-safe), column widths come from string
lengths, and ``render_line`` styles just the lines on screen. Filtering keeps
a list of matching row indexes; the cursor follows its row by key through
filters and reloads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from datetime import datetime
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

#: Widest a column may grow; longer cells end in an ellipsis.
MAX_COLUMN_WIDTH = 32
#: How many param and field columns to show at most (the rest are in the run detail).
MAX_PARAM_COLUMNS = 6
MAX_FIELD_COLUMNS = 4
COLUMN_GAP = 2


@dataclass(frozen=True, slots=True)
class TableColumn:
    label: str
    width: int


@dataclass(frozen=True, slots=True)
class TableRow:
    key: str
    status: str
    cells: tuple[str, ...]


@dataclass(frozen=True)
class RunTableData:
    """Everything the table shows, prepared in a worker thread."""

    columns: tuple[TableColumn, ...] = ()
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
        columns = tuple(TableColumn(label, width) for label, width in zip(labels, widths))
        return cls(columns, tuple(rows), status_column)


def cell_width(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` safe to put on a terminal: control characters (escapes, tabs) become spaces."""
    if text.isprintable():
        return text
    if keep_newlines:
        return "\n".join(_CONTROL.sub(" ", line) for line in text.split("\n"))
    return _CONTROL.sub(" ", text)


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


class RunTable(ScrollView, can_focus=True):
    """Runs, one per line, under a fixed header; Enter selects the run under the cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open run", show=True),
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "run-table--header",
        "run-table--cursor",
        "run-table--completed",
        "run-table--failed",
        "run-table--running",
        "run-table--pending",
        "run-table--empty",
    }

    DEFAULT_CSS = """
    RunTable {
        background: $surface;
        height: 1fr;
    }
    RunTable > .run-table--header {
        text-style: bold;
        background: $panel;
        color: $foreground;
    }
    RunTable > .run-table--cursor {
        background: $block-cursor-blurred-background;
    }
    RunTable:focus > .run-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
    }
    RunTable > .run-table--completed { color: $success; }
    RunTable > .run-table--failed { color: $error; text-style: bold; }
    RunTable > .run-table--running { color: $accent; text-style: bold; }
    RunTable > .run-table--pending { color: $text-muted; }
    RunTable > .run-table--empty { color: $text-muted; text-style: italic; }
    """

    cursor_row: reactive[int] = reactive(0, always_update=True, init=False)
    """Index into the filtered rows."""

    class RunHighlighted(Message):
        """The cursor moved to another run."""

        def __init__(self, table: RunTable, key: str | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> RunTable:
            return self.table

    class RunSelected(Message):
        """Enter (or a click on the cursor row) on a run."""

        def __init__(self, table: RunTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> RunTable:
            return self.table

    def __init__(
        self,
        *,
        empty_message: str = "no runs",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.empty_message = empty_message
        self._data = RunTableData()
        self._filter = ""
        self._visible: list[int] = []
        self._index_of: dict[str, int] = {}
        self._total_width = 0

    # -- data ---------------------------------------------------------------
    @property
    def data(self) -> RunTableData:
        return self._data

    @property
    def row_count(self) -> int:
        """Rows shown (after the filter)."""
        return len(self._visible)

    @property
    def total_rows(self) -> int:
        return len(self._data.rows)

    @property
    def filter_text(self) -> str:
        return self._filter

    @property
    def cursor_key(self) -> str | None:
        if 0 <= self.cursor_row < len(self._visible):
            return self._data.rows[self._visible[self.cursor_row]].key
        return None

    def visible_keys(self) -> list[str]:
        rows = self._data.rows
        return [rows[i].key for i in self._visible]

    def set_data(self, data: RunTableData) -> None:
        """Show new rows; the cursor stays on the same run and the scroll stays put."""
        key = self.cursor_key
        self._data = data
        self._total_width = sum(c.width for c in data.columns) + COLUMN_GAP * max(0, len(data.columns) - 1) + 1
        self._apply_filter(key)

    def set_filter(self, text: str) -> None:
        """Show only rows containing every whitespace-separated term (case-insensitive)."""
        if text == self._filter:
            return
        key = self.cursor_key
        self._filter = text
        self._apply_filter(key)
        self.scroll_to(y=max(0, self.cursor_row - self._page_rows() // 2), animate=False)

    def move_to_key(self, key: str) -> bool:
        index = self._index_of.get(key)
        if index is None:
            return False
        self.cursor_row = index
        return True

    def _apply_filter(self, keep_key: str | None) -> None:
        terms = self._filter.lower().split()
        if terms:
            search = self._data.search
            self._visible = [i for i, text in enumerate(search) if all(t in text for t in terms)]
        else:
            self._visible = list(range(len(self._data.rows)))
        rows = self._data.rows
        self._index_of = {rows[i].key: n for n, i in enumerate(self._visible)}
        self.virtual_size = Size(self._total_width, len(self._visible) + 1)
        index = self._index_of.get(keep_key, None) if keep_key is not None else None
        if index is None:
            index = min(self.cursor_row, max(0, len(self._visible) - 1))
        self.cursor_row = index
        self.refresh()

    # -- cursor -------------------------------------------------------------
    def validate_cursor_row(self, value: int) -> int:
        return max(0, min(value, len(self._visible) - 1)) if self._visible else 0

    def watch_cursor_row(self, old: int, new: int) -> None:
        self._scroll_cursor_into_view()
        self.refresh()
        self.post_message(self.RunHighlighted(self, self.cursor_key))

    def _page_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_cursor_into_view(self) -> None:
        page = self._page_rows()
        top = round(self.scroll_y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + page:
            self.scroll_to(y=self.cursor_row - page + 1, animate=False, immediate=True)

    def action_cursor_up(self) -> None:
        self.cursor_row -= 1

    def action_cursor_down(self) -> None:
        self.cursor_row += 1

    def action_page_up(self) -> None:
        self.cursor_row -= self._page_rows()

    def action_page_down(self) -> None:
        self.cursor_row += self._page_rows()

    def action_first(self) -> None:
        self.cursor_row = 0

    def action_last(self) -> None:
        self.cursor_row = len(self._visible) - 1

    def action_select_cursor(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.RunSelected(self, key))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        row = round(self.scroll_y) + offset.y - 1
        if row >= len(self._visible):
            return
        if row == self.cursor_row and event.chain >= 2:
            self.action_select_cursor()
        self.cursor_row = row

    # -- rendering ----------------------------------------------------------
    def _line_segments(self, cells: Sequence[str], styles: Sequence[Style | None], base: Style) -> list[Segment]:
        segments: list[Segment] = []
        gap = Segment(" " * COLUMN_GAP, base)
        for n, (column, text) in enumerate(zip(self._data.columns, cells)):
            if n:
                segments.append(gap)
            width = column.width
            length = cell_width(text)
            if length > width:
                text = _truncate(text, width)
                length = cell_width(text)
            style = styles[n] if n < len(styles) else None
            segments.append(Segment(text, base + style if style else base))
            if length < width:
                segments.append(Segment(" " * (width - length), base))
        return segments

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        scroll_x = round(self.scroll_x)
        base = self.rich_style
        if y == 0:
            header = self.get_component_rich_style("run-table--header")
            segments = self._line_segments([c.label for c in self._data.columns], (), header)
            return Strip(segments).crop_extend(scroll_x, scroll_x + width, header)
        index = round(self.scroll_y) + y - 1
        if not self._visible:
            if y == 1:
                empty = self.get_component_rich_style("run-table--empty")
                message = "no runs match the filter" if self._data.rows else self.empty_message
                return Strip([Segment(f" {message}", empty)]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        if index >= len(self._visible):
            return Strip.blank(width, base)
        row = self._data.rows[self._visible[index]]
        if index == self.cursor_row:
            base = base + self.get_component_rich_style("run-table--cursor")
        status_style = self.get_component_rich_style(
            f"run-table--{row.status}", default=Style.null(), partial=True
        )
        styles: list[Style | None] = [None] * len(row.cells)
        if row.cells:
            styles[self._data.status_column] = status_style
        segments = self._line_segments(row.cells, styles, base)
        return Strip(segments).crop_extend(scroll_x, scroll_x + width, base)


def _truncate(text: str, width: int) -> str:
    if width <= 1:
        return text[:width]
    out = []
    used = 0
    for ch in text:
        w = cell_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


__all__ = [
    "RunTable",
    "RunTableData",
    "TableColumn",
    "TableRow",
    "build_legacy_run_table",
    "build_run_table",
    "format_value",
    "printable",
]
