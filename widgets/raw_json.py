"""The raw text of a state file, highlighted as JSON and searchable, at any size.

A 10,000-run experiment is a quarter of a million lines, far beyond what a
Static or a highlighted TextArea renders quickly. The text is split once (in a
worker, ``RawText.from_text``) and lines are highlighted only when drawn. JSON
strings cannot span lines, so colouring one line at a time is exact; text that
is not JSON (a broken file) is shown the same way, just less colourful.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from state.text import printable_same_length

_TOKENS = re.compile(
    r'(?P<key>"(?:[^"\\]|\\.)*"(?=\s*:))'
    r'|(?P<string>"(?:[^"\\]|\\.)*"?)'
    r"|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
    r"|(?P<literal>\b(?:true|false|null)\b)"
)
MAX_MATCHES = 100_000


@dataclass(frozen=True)
class RawText:
    """A file's text split into lines, with what search needs; built off the event loop."""

    text: str
    lines: tuple[str, ...]
    starts: tuple[int, ...]
    lower: str
    width: int

    @classmethod
    def from_text(cls, text: str) -> RawText:
        split = text.split("\n")
        # Tabs and control characters become one visible cell each, so match columns stay exact.
        lines = tuple(line if line.isprintable() else printable_same_length(line.rstrip("\r")) for line in split)
        starts = tuple(accumulate((len(line) + 1 for line in split), initial=0))[:-1]
        width = max(map(len, lines), default=0)
        return cls(text, lines, starts, text.lower(), width)

    def find(self, query: str) -> list[tuple[int, int]]:
        """(line, column) of each case-insensitive occurrence of ``query``."""
        needle = query.lower()
        if not needle or "\n" in needle:
            return []
        found: list[tuple[int, int]] = []
        haystack = self.lower
        starts = self.starts
        pos = haystack.find(needle)
        while pos != -1 and len(found) < MAX_MATCHES:
            line = bisect_right(starts, pos) - 1
            found.append((line, pos - starts[line]))
            pos = haystack.find(needle, pos + len(needle))
        return found


EMPTY_RAW = RawText("", ("",), (0,), "", 0)


class RawJsonView(ScrollView, can_focus=True):
    """Line-numbered, highlighted text with incremental search (`n` / `N` step through matches)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "next_match", "Next match", show=True),
        Binding("N", "previous_match", "Prev match", show=True),
        Binding("up,k", "scroll_up", "Up", show=False),
        Binding("down,j", "scroll_down", "Down", show=False),
        Binding("home", "scroll_home", "Top", show=False),
        Binding("end", "scroll_end", "Bottom", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "raw-json--gutter",
        "raw-json--key",
        "raw-json--string",
        "raw-json--number",
        "raw-json--literal",
        "raw-json--match",
        "raw-json--current-match",
    }

    DEFAULT_CSS = """
    RawJsonView {
        background: $surface;
        height: 1fr;
    }
    RawJsonView > .raw-json--gutter { color: $text-muted; }
    RawJsonView > .raw-json--key { color: $text-primary; }
    RawJsonView > .raw-json--string { color: $text-success; }
    RawJsonView > .raw-json--number { color: $text-warning; }
    RawJsonView > .raw-json--literal { color: $text-accent; text-style: bold; }
    RawJsonView > .raw-json--match { background: $warning 40%; }
    RawJsonView > .raw-json--current-match { background: $warning; color: $text; text-style: bold; }
    """

    class SearchMoved(Message):
        """The current match changed (or the search found nothing)."""

        def __init__(self, view: RawJsonView, index: int | None, count: int) -> None:
            super().__init__()
            self.view = view
            self.index = index
            self.count = count

        @property
        def control(self) -> RawJsonView:
            return self.view

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._raw = EMPTY_RAW
        self._query = ""
        self._matches: list[tuple[int, int]] = []
        self._by_line: dict[int, list[int]] = {}
        self._current: int | None = None
        self._gutter = 2

    @property
    def raw(self) -> RawText:
        return self._raw

    @property
    def query(self) -> str:
        return self._query

    @property
    def match_count(self) -> int:
        return len(self._matches)

    @property
    def current_match(self) -> tuple[int, int] | None:
        """(line, column) of the current match, 0-based."""
        return None if self._current is None else self._matches[self._current]

    @property
    def current_index(self) -> int | None:
        return self._current

    def set_raw(self, raw: RawText) -> None:
        """Show new text; the scroll position and the search are kept."""
        previous = self.current_match
        self._raw = raw
        self._gutter = len(str(len(raw.lines))) + 1
        self.virtual_size = Size(raw.width + self._gutter + 1, len(raw.lines))
        self._run_search(self._query, near=previous[0] if previous else None, scroll=False)
        self.refresh()

    def search(self, query: str) -> int:
        """Find ``query`` (case-insensitive); jump to the first match from the top of the view."""
        self._run_search(query, near=round(self.scroll_y), scroll=True)
        return len(self._matches)

    def _run_search(self, query: str, *, near: int | None, scroll: bool) -> None:
        self._query = query
        self._matches = self._raw.find(query)
        by_line: dict[int, list[int]] = {}
        for line, col in self._matches:
            by_line.setdefault(line, []).append(col)
        self._by_line = by_line
        if not self._matches:
            self._current = None
        else:
            start = 0
            if near is not None:
                start = next((i for i, (line, _) in enumerate(self._matches) if line >= near), 0)
            self._current = start
        if scroll:
            self._reveal_current()
        self.refresh()
        self.post_message(self.SearchMoved(self, self._current, len(self._matches)))

    def action_next_match(self) -> None:
        self._step(1)

    def action_previous_match(self) -> None:
        self._step(-1)

    def _step(self, delta: int) -> None:
        if not self._matches:
            return
        self._current = ((self._current or 0) + delta) % len(self._matches)
        self._reveal_current()
        self.refresh()
        self.post_message(self.SearchMoved(self, self._current, len(self._matches)))

    def _reveal_current(self) -> None:
        match = self.current_match
        if match is None:
            return
        line, col = match
        height = self.scrollable_content_region.height or 1
        width = self.scrollable_content_region.width or 1
        y = None
        top = round(self.scroll_y)
        if not top <= line < top + height:
            y = max(0, line - height // 3)
        x = None
        left = round(self.scroll_x)
        text_width = max(1, width - self._gutter - 1)
        if not left <= col < left + text_width - len(self._query):
            x = max(0, col - text_width // 2)
        self.scroll_to(x=x, y=y, animate=False, immediate=True)

    def action_page_up(self) -> None:
        self.scroll_page_up(animate=False)

    def action_page_down(self) -> None:
        self.scroll_page_down(animate=False)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        index = round(self.scroll_y) + y
        if index >= len(self._raw.lines):
            return Strip.blank(width, base)
        gutter_style = base + self.get_component_rich_style("raw-json--gutter", partial=True)
        number = Segment(f"{index + 1:>{self._gutter - 1}} ", gutter_style)
        text = self._highlight(index, base)
        scroll_x = round(self.scroll_x)
        body_width = max(0, width - self._gutter)
        segments = list(text.render(self.app.console, end=""))
        body = Strip(segments).crop_extend(scroll_x, scroll_x + body_width, base)
        return Strip([number, *body])

    def _highlight(self, index: int, base: Style) -> Text:
        line = self._raw.lines[index]
        text = Text(line, style=base, no_wrap=True, end="")
        styles = {
            kind: self.get_component_rich_style(f"raw-json--{kind}", partial=True)
            for kind in ("key", "string", "number", "literal")
        }
        for m in _TOKENS.finditer(line):
            kind = m.lastgroup
            if kind:
                text.stylize(styles[kind], m.start(), m.end())
        cols = self._by_line.get(index)
        if cols:
            size = len(self._query)
            match_style = self.get_component_rich_style("raw-json--match", partial=True)
            current = self.current_match
            current_style = self.get_component_rich_style("raw-json--current-match", partial=True)
            for col in cols:
                is_current = current is not None and current == (index, col)
                text.stylize(current_style if is_current else match_style, col, col + size)
        return text


__all__ = ["EMPTY_RAW", "RawJsonView", "RawText"]
