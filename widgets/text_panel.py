"""A bordered panel of Rich text that repaints only when its text changes."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from widgets.safe_text import safe_text


class TextPanel(Static):
    """Base of the GPU and device panels: one line per item, cut (never wrapped) on narrow screens."""

    DEFAULT_CSS = """
    TextPanel {
        height: auto;
        max-height: 12;
        border: round $panel;
        border-title-color: $text-muted;
        padding: 0 1;
        overflow-y: auto;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    shown: Text | None = None
    """The text on screen (what ``expwatch snapshot`` prints too)."""

    def show_text(self, text: Text) -> None:
        """Skip the repaint (and the bytes to the terminal) when nothing changed, and the layout pass
        when the line count did not (its lines are never wrapped: the count is its height)."""
        text = safe_text(text, keep_newlines=True)
        if text != self.shown:
            same_height = self.shown is not None and self.shown.plain.count("\n") == text.plain.count("\n")
            self.shown = text
            self.update(text, layout=not same_height)
