"""A bordered, scrollable panel of Rich text lines that draws only the lines in view."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from widgets.safe_text import safe_text

#: One line of a panel, drawn when it comes into view.
Line = Callable[[], Text]


def joined(lines: Sequence[Line]) -> Text:
    """Every line drawn, as one text."""
    out = Text(no_wrap=True, overflow="ellipsis")
    for n, line in enumerate(lines):
        if n:
            out.append("\n")
        out.append_text(line())
    return out


class TextPanel(ScrollView):
    """Base of the GPU and device panels: one line per item, cut (never wrapped) on narrow screens.

    Its lines are functions drawn on demand: a fleet is hundreds of lines (32 hosts x 8 GPUs)
    of which a handful show, and their sparklines change every second; only the lines in view
    are drawn, a repaint happens only when they read differently, and a layout pass only when
    the line count changes. Tab focuses it; the arrows, PgUp/PgDn and the wheel scroll it; while
    lines are out of view its bottom border says which show."""

    can_focus = True
    BINDINGS = [
        Binding("up,k", "scroll_up", "Scroll up", show=False),
        Binding("down,j", "scroll_down", "Scroll down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "scroll_home", "Top", show=False),
        Binding("end", "scroll_end", "Bottom", show=False),
    ]

    DEFAULT_CSS = """
    TextPanel {
        height: auto;
        max-height: 12;
        border: round $panel;
        border-title-color: $text-muted;
        border-subtitle-color: $text-muted;
        padding: 0 1;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
    }
    TextPanel:focus {
        border: round $accent;
    }
    """

    def __init__(self, placeholder: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._lines: list[Line] = [lambda: Text(placeholder)]
        self._in_view: list[Text] = []
        self._strips: dict[int, Strip] = {}
        self._text: Text | None = None
        self._showing = False
        self.virtual_size = Size(0, 1)

    @property
    def shown(self) -> Text | None:
        """Every line, drawn now (what ``expwatch snapshot`` prints; the screen shows those in view);
        None before anything was shown."""
        if not self._showing:
            return None
        return joined([partial(self._line_text, n) for n in range(len(self._lines))])

    def show_text(self, text: Text) -> None:
        """Show ``text``'s lines (when they differ from those on screen)."""
        if text == self._text:
            return
        self._text = text
        lines = text.split("\n", allow_blank=True)
        self.show_lines([lambda line=line: line for line in lines])

    def show_lines(self, lines: Sequence[Line]) -> None:
        """Show these lines: the ones in view are drawn now, and the panel repainted only when they
        read differently; the rest are drawn when scrolled into view."""
        self._showing = True
        resized = len(lines) != len(self._lines)
        self._lines = list(lines)
        self._strips.clear()
        if resized:
            self.virtual_size = Size(0, len(self._lines))
            self.refresh(layout=True)
            self.call_after_refresh(self.note_position)
            self._in_view = []
            return
        in_view = self._draw_in_view()
        if in_view != self._in_view:
            self._in_view = in_view
            self.refresh()

    def _line_text(self, n: int) -> Text:
        return safe_text(self._lines[n](), keep_newlines=False)

    def _draw_in_view(self) -> list[Text]:
        top = int(self.scroll_y)
        return [self._line_text(n) for n in range(top, min(len(self._lines), top + self.scrollable_content_region.height))]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        n = int(self.scroll_y) + y
        base = self.rich_style
        if n >= len(self._lines):
            return Strip.blank(width, base)
        strip = self._strips.get(n)
        if strip is None or strip.cell_length != width:
            text = self._line_text(n).copy()  # the line's own Text may be kept by whoever made it: never cut that
            text.no_wrap, text.overflow = True, "ellipsis"
            text.truncate(width, overflow="ellipsis")
            strip = Strip(list(text.render(self.app.console))).crop_extend(0, width, base).apply_style(base)
            self._strips[n] = strip
        return strip

    def on_resize(self) -> None:
        self._strips.clear()
        self.call_after_refresh(self.note_position)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._in_view = []
        self.note_position()

    @property
    def line_count(self) -> int:
        return len(self._lines)

    def note_position(self) -> None:
        """``3-8 of 20`` on the bottom border while some lines are out of view; nothing when all show."""
        lines, rows = self.line_count, self.scrollable_content_region.height
        top = int(self.scroll_y)
        said = f"{top + 1}-{min(lines, top + rows)} of {lines} · tab, ↑↓" if rows and lines > rows else ""
        if said != (self.border_subtitle or ""):  # setting it, even to the same text, repaints the panel
            self.border_subtitle = said
