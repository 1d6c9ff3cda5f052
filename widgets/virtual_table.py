"""A keyed table that renders only the rows on screen.

Textual's DataTable measures and stores every row; with ten thousand
experiments that costs seconds. This table keeps rows as plain objects and asks
a ``render_cells`` callback for the cells of visible rows only, so a change to
one row costs one line and a tick of the clock costs one screenful.
Columns carry a priority: on a narrow terminal the least important go first,
and the header ends with ``+N›`` saying how many are hidden (a click on it, or
the screen's column picker, chooses them). Chosen columns are all shown: when
they do not fit, the table scrolls sideways (←/→). Spare width goes to the flex
columns by what their content needs (``want_width``), not evenly. The header
marks the sorted column (▲/▼) and a click on a header asks to sort by it. The
cursor stays on the first row until someone moves it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer

from state.text import printable
from widgets.safe_text import safe_text

RowT = TypeVar("RowT")
Cell = str | Text
#: The longest a table with clock-driven cells waits before comparing them again: a wall clock
#: that jumped (a machine back from suspend) shows within it.
CLOCK_MAX_SECONDS = 60.0
#: How long after a text is due to change it is read, so that it has.
CLOCK_LATE_SECONDS = 0.01


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int
    priority: int = 0
    """0 is always shown; higher numbers are dropped first when space runs out."""
    justify: str = "left"
    flex: bool = False
    """A flex column takes the width left over (at least ``width``)."""
    title: str = ""
    """Its name in words where there is room (a picker, a palette); the label when empty."""

    @property
    def name(self) -> str:
        return self.title or self.label


class VirtualTable(ScrollView, Generic[RowT], can_focus=True):
    """Rows keyed by a hashable key, rendered lazily, with a keyed cursor."""

    DEFAULT_CSS = """
    VirtualTable {
        height: 1fr;
        overflow-x: auto;
        overflow-y: auto;
        background: $surface;
    }
    VirtualTable > .virtual-table--header {
        text-style: bold;
        background: $panel;
        color: $foreground;
    }
    VirtualTable > .virtual-table--cursor {
        background: $block-cursor-blurred-background;
        color: $block-cursor-blurred-foreground;
    }
    VirtualTable:focus > .virtual-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: $block-cursor-text-style;
    }
    VirtualTable > .virtual-table--hidden {
        color: $accent;
        text-style: bold;
    }
    VirtualTable > .virtual-table--empty {
        color: $text-muted;
        text-style: italic;
    }
    """

    COMPONENT_CLASSES = {
        "virtual-table--header",
        "virtual-table--cursor",
        "virtual-table--empty",
        "virtual-table--hidden",
    }

    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("enter", "select", "Select", show=False),
        Binding("left,h", "scroll_left", "Scroll left", show=False),
        Binding("right,l", "scroll_right", "Scroll right", show=False),
    ]

    cursor_index: reactive[int] = reactive(0, always_update=True, repaint=False)

    class RowMessage(Message):
        """Which table, and the key of the row concerned."""

        def __init__(self, table: VirtualTable[Any], key: Hashable | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> VirtualTable[Any]:
            return self.table

    class CursorMoved(RowMessage):
        """The highlighted row changed (key is None when the table is empty)."""

    class RowChosen(RowMessage):
        """Enter (or a click on the highlighted row) on a row."""

        key: Hashable

    class HeaderClicked(Message):
        """A click on a column's header (``column`` is its key), or on the ``+N›`` hidden-columns
        marker (``column`` is None)."""

        def __init__(self, table: VirtualTable[Any], column: str | None) -> None:
            super().__init__()
            self.table = table
            self.column = column

        @property
        def control(self) -> VirtualTable[Any]:
            return self.table

    def __init__(
        self,
        columns: Sequence[Column],
        render_cells: Callable[[RowT], Sequence[Cell]],
        *,
        clock_cells: Callable[[RowT], tuple[str, ...]] | None = None,
        clock_change: Callable[[RowT], float | None] | None = None,
        empty_text: str = "nothing to show",
        column_gap: int = 1,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns = tuple(columns)
        self._render_cells = render_cells
        #: The texts of a row that change with the clock alone (ages, elapsed), when the table
        #: knows them: a clock tick then compares those instead of rendering every cell.
        self._clock_cells = clock_cells
        #: Seconds until a row's clock texts read differently (None: not by the clock alone): the
        #: table then looks at its visible rows again just when the first of them changes, and not
        #: at all while none can (an idle screen of finished experiments wakes once a minute at most).
        self._clock_change = clock_change
        self._clock_timer: Timer | None = None
        self._clock_at = float("inf")
        self.empty_text = empty_text
        self.column_gap = column_gap
        self._rows: dict[Hashable, RowT] = {}
        self._order: list[Hashable] = []
        self._index: dict[Hashable, int] = {}
        self._layout: list[tuple[int, Column, int]] = []
        """(position in ``columns``, column, width) of the columns shown at ``_layout_width``."""
        self._layout_width = -1
        self._line_width = 0
        #: The content width while a repaint runs (``render_lines``), read once for all its lines.
        self._repaint_width: int | None = None
        self._repaint_style: Style | None = None
        self._last_cursor_key: Hashable | None = None
        self._drawn: dict[Hashable, tuple[str, ...]] = {}
        self.hidden: frozenset[str] = frozenset()
        """Keys of the columns the user chose not to see."""
        self._hidden: list[Column] = []
        self._wanted: dict[str, int] = {}
        self.chosen: tuple[str, ...] | None = None
        """Column keys the user chose (all shown, scrolling sideways); None: fit the width by priority."""
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.cursor_placed = False
        """Someone moved the cursor; until then a new order puts it on the first row."""

    # -- data -----------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self._order)

    @property
    def keys(self) -> list[Hashable]:
        return list(self._order)

    def get_row(self, key: Hashable) -> RowT | None:
        return self._rows.get(key)

    @property
    def cursor_key(self) -> Hashable | None:
        if 0 <= self.cursor_index < len(self._order):
            return self._order[self.cursor_index]
        return None

    def set_columns(self, columns: Sequence[Column]) -> None:
        """New columns (for tables whose columns come from the data)."""
        self.columns = tuple(columns)
        self._relayout()

    def choose_columns(self, keys: Sequence[str] | None) -> None:
        """Show exactly these columns (scrolling sideways when they do not fit), or None: fit the width."""
        self.chosen = tuple(keys) if keys is not None else None
        self.scroll_to(x=0, animate=False, immediate=True)
        self._relayout()

    @property
    def hidden_columns(self) -> list[Column]:
        """The columns the current width leaves out."""
        self._column_layout()
        return list(self._hidden)

    def want_width(self, key: str, width: int) -> None:
        """The width ``key``'s content needs (a flex column gets up to it from the spare width)."""
        if self._wanted.get(key) != width:
            self._wanted[key] = width
            self._relayout()

    def wanted_width(self, key: str) -> int:
        """What ``want_width`` last asked for ``key`` (0: nothing yet)."""
        return self._wanted.get(key, 0)

    def show_sort(self, column: str | None, reverse: bool) -> None:
        """Mark the column the rows are sorted by in the header."""
        if (column, reverse) != (self.sort_column, self.sort_reverse):
            self.sort_column, self.sort_reverse = column, reverse
            self.refresh_line(0)

    def _relayout(self) -> None:
        self._layout_width = -1
        self._drawn.clear()
        self._update_virtual_size()
        self.refresh()

    def hide_columns(self, keys: Iterable[str]) -> None:
        """Never show these columns (unknown keys are ignored: a saved choice may outlive a column)."""
        self.hidden = frozenset(keys)
        self.set_columns(self.columns)

    def replace_rows(self, rows: Mapping[Hashable, RowT], order: Iterable[Hashable]) -> None:
        """Show ``rows`` in ``order``; the cursor stays on the same key where it can.

        The table keeps ``rows`` itself, not a copy, so a caller that holds the
        one copy of its rows (the dashboard's board) shares it: a key in the
        order whose row has gone from the mapping draws as a blank line until the
        next order arrives.
        """
        keep = self.cursor_key
        self._rows = rows  # type: ignore[assignment]
        self._set_order(list(order), keep)

    def update_rows(self, rows: Mapping[Hashable, RowT]) -> None:
        """Rows whose data changed (no reordering): repaint only their lines."""
        for key, row in rows.items():
            if key in self._rows:
                if self._rows[key] is not row:
                    self._rows[key] = row
                self.refresh_key(key)

    def reorder(self, order: Iterable[Hashable]) -> None:
        """A new order (the rows dict must already hold every key in it)."""
        self._set_order(list(order), self.cursor_key)

    def _set_order(self, order: list[Hashable], keep: Hashable | None) -> None:
        self._order = order
        self._index = {key: i for i, key in enumerate(order)}
        self._drawn.clear()
        self._update_virtual_size()
        if not self.cursor_placed:
            index = 0
        elif keep is not None and keep in self._index:
            index = self._index[keep]
        else:
            index = min(self.cursor_index, max(0, len(order) - 1))
        self._move_cursor(index, force_message=keep not in self._index)
        self.refresh()

    def refresh_if_changed(self) -> int:
        """Repaint only the visible rows whose cells differ from what was last drawn.

        For clock-driven columns (ages, elapsed): a tick that changes nothing
        on screen writes nothing to the terminal. Returns the lines repainted.
        """
        top = round(self.scroll_y)
        repainted = 0
        soonest: float | None = None
        for index in range(top, min(len(self._order), top + self._body_height)):
            key = self._order[index]
            row = self._rows.get(key)
            if row is None:
                continue
            cells = self._clock_cells(row) if self._clock_cells else tuple(_plain_text(c) for c in self._render_cells(row))
            if self._drawn.get(key) != cells:
                self.refresh_line(index + 1)
                repainted += 1
            elif self._clock_change is not None and (due := self._clock_change(row)) is not None:
                soonest = due if soonest is None else min(soonest, due)
        self._look_again_in(soonest)
        return repainted

    @property
    def clock_look_in(self) -> float | None:
        """Seconds until the table compares its clock-driven cells again (None: no look is due)."""
        return None if self._clock_timer is None else max(0.0, self._clock_at - time.monotonic())

    def _look_again_in(self, due: float | None) -> None:
        """Compare the clock-driven cells again ``due`` seconds from now, unless a look comes sooner."""
        if due is None or self._clock_change is None:
            return
        now = time.monotonic()
        at = now + min(due, CLOCK_MAX_SECONDS) + CLOCK_LATE_SECONDS
        if at >= self._clock_at and self._clock_timer is not None:
            return
        if self._clock_timer is not None:
            self._clock_timer.stop()
        self._clock_at = at
        self._clock_timer = self.set_timer(at - now, self._clock_tick)

    def _clock_tick(self) -> None:
        self._clock_timer = None
        self._clock_at = float("inf")
        self.refresh_if_changed()

    def refresh_key(self, key: Hashable) -> None:
        index = self._index.get(key)
        if index is None:
            return
        screen_y = index + 1 - round(self.scroll_y)
        if 1 <= screen_y <= self._body_height:
            self.refresh_line(index + 1)

    # -- cursor ---------------------------------------------------------------
    def move_cursor_to_key(self, key: Hashable) -> None:
        if key in self._index:
            self.cursor_placed = True
            self._move_cursor(self._index[key])

    def _move_cursor(self, index: int, *, force_message: bool = False) -> None:
        index = max(0, min(index, len(self._order) - 1)) if self._order else 0
        old = self.cursor_index
        self.cursor_index = index
        self._scroll_cursor_into_view()
        if old != index:
            self.refresh()
        key = self.cursor_key
        if force_message or key != self._last_cursor_key:
            self._last_cursor_key = key
            self.post_message(self.CursorMoved(self, key))

    @property
    def _body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_cursor_into_view(self) -> None:
        top = round(self.scroll_y)
        if self.cursor_index < top:
            self.scroll_to(y=self.cursor_index, animate=False, immediate=True)
        elif self.cursor_index >= top + self._body_height:
            self.scroll_to(y=self.cursor_index - self._body_height + 1, animate=False, immediate=True)

    def action_cursor_up(self) -> None:
        self._user_move(self.cursor_index - 1)

    def action_cursor_down(self) -> None:
        self._user_move(self.cursor_index + 1)

    def action_page_up(self) -> None:
        self._user_move(self.cursor_index - self._body_height)

    def action_page_down(self) -> None:
        self._user_move(self.cursor_index + self._body_height)

    def action_first(self) -> None:
        self._user_move(0)

    def action_last(self) -> None:
        self._user_move(len(self._order) - 1)

    def _user_move(self, index: int) -> None:
        self.cursor_placed = True
        self._move_cursor(index)

    def action_select(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.RowChosen(self, key))

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            self._header_clicked(offset.x)
            return
        index = round(self.scroll_y) + offset.y - 1
        if 0 <= index < len(self._order):
            if index == self.cursor_index and event.chain >= 2:
                self.action_select()
            self._user_move(index)

    def _header_clicked(self, x: int) -> None:
        width = self.scrollable_content_region.width
        marker = self._hidden_marker()
        if marker and x >= width - len(marker):
            self.post_message(self.HeaderClicked(self, None))
            return
        left = -round(self.scroll_x)
        for _, col, w in self._column_layout():
            if left <= x < left + w + self.column_gap:
                self.post_message(self.HeaderClicked(self, col.key))
                return
            left += w + self.column_gap

    def on_resize(self) -> None:
        self._update_virtual_size()
        self._scroll_cursor_into_view()

    def _update_virtual_size(self) -> None:
        self._column_layout()
        self.virtual_size = Size(self._line_width, len(self._order) + 1)

    # -- rendering ------------------------------------------------------------
    def render_lines(self, crop: Region) -> list[Strip]:
        # Textual works the content width out from the scrollbars' styles on each ask (each line
        # asked three times) and the style from every ancestor's: both a quarter of drawing the
        # first rows (cProfile, 33 rows). Read once for the repaint's lines.
        self._repaint_width = self.scrollable_content_region.width
        self._repaint_style = self.rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._repaint_width = self._repaint_style = None

    @property
    def _content_width(self) -> int:
        width = self._repaint_width
        return self.scrollable_content_region.width if width is None else width

    @property
    def _base_style(self) -> Style:
        style = self._repaint_style
        return self.rich_style if style is None else style

    def visible_columns(self, width: int) -> list[tuple[Column, int]]:
        """The columns shown in ``width`` cells, with their widths.

        Chosen columns are all shown. Otherwise the highest priority numbers go
        first until the rest fit, leaving room for the ``+N›`` marker. Spare width
        goes to the flex columns, each up to what its content needs, then evenly.
        """
        if self.chosen is not None:
            chosen = set(self.chosen)
            shown = [c for c in self.columns if c.key in chosen]
            dropped: list[Column] = []
        else:
            shown, dropped = self._fit(width)
            if dropped:
                shown, dropped = self._fit(width - len(_marker(len(dropped))) - 1)
        self._hidden = dropped
        room = width - (len(_marker(len(dropped))) + 1 if dropped else 0)
        spare = room - sum(c.width for c in shown) - self.column_gap * max(0, len(shown) - 1)
        widths = {c.key: c.width for c in shown}
        flex = [c for c in shown if c.flex]
        needs = {c.key: max(0, self._wanted.get(c.key, c.width) - c.width) for c in flex}
        total_need = sum(needs.values())
        if spare > 0 and total_need:
            gives = {k: n if total_need <= spare else n * spare // total_need for k, n in needs.items()}
            for k, give in gives.items():
                widths[k] += give
            spare -= sum(gives.values())
        if spare > 0 and flex:
            for c in flex:
                widths[c.key] += spare // len(flex)
        return [(c, widths[c.key]) for c in shown]

    def _fit(self, width: int) -> tuple[list[Column], list[Column]]:
        """(shown, dropped): drop the highest priority numbers until the rest fit (never a hidden one)."""
        shown = [c for c in self.columns if c.key not in self.hidden]
        dropped: list[Column] = []
        gap = self.column_gap
        while shown and sum(c.width for c in shown) + gap * max(0, len(shown) - 1) > width:
            droppable = [c for c in shown if c.priority > 0]
            if not droppable:
                break
            drop = max(droppable, key=lambda c: (c.priority, shown.index(c)))
            shown.remove(drop)
            dropped.append(drop)
        return shown, dropped

    def _hidden_marker(self) -> str:
        """``+N›``; with the sort's arrow before it when the rows are sorted by a column left out."""
        self._column_layout()
        if not self._hidden:
            return ""
        sorted_hidden = any(col.key == self.sort_column for col in self._hidden)
        return ("▼" if self.sort_reverse else "▲") * sorted_hidden + _marker(len(self._hidden))

    def _column_layout(self) -> list[tuple[int, Column, int]]:
        """The shown columns at the current width; cached until the width or the columns change.

        ``_line_width`` is what they take together: more than the width when
        the columns that must stay do not fit (the table then scrolls sideways).
        """
        width = self._content_width
        if width != self._layout_width:
            position = {c.key: i for i, c in enumerate(self.columns)}
            shown = self.visible_columns(width)
            self._layout = [(position[c.key], c, w) for c, w in shown]
            self._line_width = sum(w for _, w in shown) + self.column_gap * max(0, len(shown) - 1)
            self._layout_width = width
        return self._layout

    def _line(self, cells: Sequence[Cell], style: Style) -> Strip:
        """One row's cells cut or padded to their columns' widths, in one strip.

        Plain-text cells (most of them) become a segment each, cut as ``Text.truncate`` with an
        ellipsis cuts them; styled ones go through ``Text``. Building one ``Text`` of the whole
        row and rendering it cost 0.3-0.5 ms a row, most of the first rows' drawing (cProfile).
        """
        layout = self._column_layout()
        width = self._content_width
        line_width = max(width, self._line_width)
        console = self.app.console
        segments: list[Segment] = []
        gap = Segment(" " * self.column_gap)
        spanning = len(cells) < len(self.columns)
        last = len(layout) - 1
        used = 0
        for n, (position, col, w) in enumerate(layout):
            if spanning and position >= len(cells):
                break
            if spanning and position == len(cells) - 1:
                # A short row: its last cell spans every column left.
                w = line_width - used
                last = n
            cell = cells[position]
            if isinstance(cell, Text):
                part = safe_text(cell)
                part = part.copy() if part is cell else part
                part.truncate(w, overflow="ellipsis")
                pad = w - part.cell_len
                if col.justify == "right":
                    part.pad_left(pad)
                else:
                    part.pad_right(pad)
                used += part.cell_len
                if part.spans:
                    segments.extend(part.render(console))
                else:  # ``Text.render`` leaves a text's own style to its caller when it has no spans
                    segments.append(Segment(part.plain, console.get_style(part.style, default=Style.null())))
            else:
                plain = printable(cell)
                size = cell_len(plain)
                if size > w:
                    plain = set_cell_size(plain, w - 1) + "…"
                    size = cell_len(plain)
                pad = " " * (w - size)
                plain = pad + plain if col.justify == "right" else plain + pad
                used += size + len(pad)
                segments.append(Segment(plain))
            if n == last:
                break
            segments.append(gap)
            used += self.column_gap
        scroll_x = round(self.scroll_x)
        return Strip(segments).crop_extend(scroll_x, scroll_x + width, style).apply_style(style)

    def _header_line(self, style: Style) -> Strip:
        widths = {col.key: w for _, col, w in self._column_layout()}
        labels: list[Cell] = []
        for col in self.columns:
            label = col.label
            if col.key == self.sort_column:
                arrow = "▼" if self.sort_reverse else "▲"
                room = widths.get(col.key, len(label) + 2)
                label = f"{label} {arrow}" if len(label) + 2 <= room else f"{label[: max(0, room - 1)]}{arrow}"
            labels.append(label)
        line = self._line(labels, style)
        marker = self._hidden_marker()
        if not marker:
            return line
        width = self._content_width
        hidden = self.get_component_rich_style("virtual-table--hidden")
        return Strip.join([line.crop(0, width - len(marker)), Strip([Segment(marker, style + hidden)])])

    def render_line(self, y: int) -> Strip:
        width = self._content_width
        base = self._base_style
        if y == 0:
            return self._header_line(base + self.get_component_rich_style("virtual-table--header"))
        index = round(self.scroll_y) + y - 1
        if not self._order:
            if y == 1:
                empty = self.get_component_rich_style("virtual-table--empty")
                return Strip([Segment(self.empty_text[:width], base + empty)]).extend_cell_length(width, base)
            return Strip.blank(width, base)
        if index >= len(self._order):
            return Strip.blank(width, base)
        key = self._order[index]
        row = self._rows.get(key)
        if row is None:
            return Strip.blank(width, base)
        cells = self._render_cells(row)
        self._drawn[key] = self._clock_cells(row) if self._clock_cells else tuple(_plain_text(c) for c in cells)
        if self._clock_change is not None:
            self._look_again_in(self._clock_change(row))
        if index == self.cursor_index:
            style = base + self.get_component_rich_style("virtual-table--cursor")
            return self._line([_plain(c) for c in cells], style)
        return self._line(cells, base)


def _marker(hidden: int) -> str:
    """The header's note that ``hidden`` columns are left out."""
    return f"+{hidden}›"


def _plain_text(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def _plain(cell: Cell) -> Cell:
    """Cursor rows drop cell colours so the cursor colour reads well."""
    if isinstance(cell, Text):
        return Text(cell.plain)
    return cell
