"""One line at the top: where we look, how many experiments per status, READ-ONLY when observing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from rich.text import Text
from textual.widgets import Static

from widgets import formatting as fmt
from widgets.safe_text import safe_text

ORDER = ("running", "stale", "interrupted", "failed", "broken", "initialised", "completed", "aggregated")


class StatusHeader(Static):
    DEFAULT_CSS = """
    StatusHeader {
        height: 1;
        background: $panel;
        color: $foreground;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, state_dir: str, *, read_only: bool, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state_dir = state_dir
        self.read_only = read_only
        self.counts: Counter[str] = Counter()
        self.note = ""

    def on_mount(self) -> None:
        self.refresh_text()

    def on_resize(self) -> None:
        self.refresh_text()

    def show_counts(self, counts: Mapping[str, int], note: str = "") -> None:
        self.counts = Counter(counts)
        self.note = note
        self.refresh_text()

    def refresh_text(self) -> None:
        colours = fmt.theme_colours(self.app.theme_variables)
        text = Text()
        text.append("expwatch ", style="bold")
        if self.read_only:
            text.append(" READ-ONLY ", style=f"bold reverse {colours['$warning']}")
            text.append(" ")
        total = sum(self.counts.values())
        text.append(f"{total} exp", style="bold")
        shown = [(s, self.counts.get(s, 0)) for s in ORDER if self.counts.get(s, 0)]
        width = self.size.width or 80
        wordy = text.cell_len + sum(len(s) + len(str(n)) + 4 for s, n in shown) + len(self.note) + 4 <= width
        for status, n in shown:
            symbol, colour = fmt.STATUS_LOOK.get(status, ("?", "$text"))
            label = f"  {symbol}{n} {status}" if wordy else f" {symbol}{n}"
            text.append(label, style=colours.get(colour, ""))
        if self.note:
            text.append(f"  {self.note}", style=colours["$warning"])
        text.append(f"  {self.state_dir}", style=colours["$text-muted"])
        text = safe_text(text)
        if text != getattr(self, "_shown", None):
            self._shown = text
            self.update(text)
