"""The tail of a run's log, read in a worker."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Log, Static

from state.sidecar import read_tail
from state.text import printable

TAIL_BYTES = 256 * 1024


class LogScreen(Screen[None]):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        yield Static(f"log: {printable(str(self.path))}", id="log-title", markup=False)
        yield Log(id="log", highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        self._load()

    @work(thread=True, exit_on_error=False, description="read the log")
    def _load(self) -> None:
        try:
            # The path comes from a state file: a device or a FIFO is refused, a giant read from its end.
            data, _ = read_tail(self.path, TAIL_BYTES)
            text = printable(data.decode("utf-8", "replace"), keep_newlines=True)
        except OSError as exc:
            text = f"cannot read the log: {printable(exc.strerror or str(exc))}"
        self.app.call_from_thread(self.query_one(Log).write, text)
