"""A yes/no dialog that shows what is about to happen (or why it cannot)."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from state.text import printable


class ConfirmDialog(ModalScreen[bool]):
    """Dismisses with True only on an explicit confirm; Esc, n and Cancel give False.

    With ``refusal`` set the action is not allowed: the dialog explains why and
    offers only Close.
    """

    BINDINGS = [
        Binding("escape,n", "cancel", "Cancel"),
        Binding("y", "confirm", "Confirm", show=False),
    ]

    def __init__(self, title: str, lines: Sequence[str], *, confirm_label: str = "Confirm", refusal: str | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.lines = list(lines)
        self.confirm_label = confirm_label
        self.refusal = refusal

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            # Titles, lines and refusals carry ids and reasons from files: text, never markup.
            yield Label(printable(self.title_text), id="dialog-title", markup=False)
            with VerticalScroll(id="dialog-body"):
                if self.refusal:
                    yield Static(printable(f"Not allowed: {self.refusal}", keep_newlines=True), id="dialog-refusal", markup=False)
                yield Static(printable("\n".join(self.lines), keep_newlines=True), markup=False)
            with Horizontal(id="dialog-buttons"):
                if self.refusal is None:
                    yield Button(f"{self.confirm_label} (y)", variant="warning", id="confirm")
                yield Button("Close (esc)" if self.refusal else "Cancel (n)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel" if self.refusal else "#confirm", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_confirm(self) -> None:
        if self.refusal is None:
            self.dismiss(True)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, rows: Sequence[tuple[str, str]], read_only: bool) -> None:
        super().__init__()
        self.rows = rows
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        width = max(len(k) for k, _ in self.rows)
        body = "\n".join(f"{k:>{width}}  {v}" for k, v in self.rows)
        if self.read_only:
            body += "\n\nRead-only observer mode: resume, mark stale and clean up are disabled."
        with Vertical(id="dialog"):
            yield Label("expwatch keys", id="dialog-title")
            with VerticalScroll(id="dialog-body"):
                yield Static(body, markup=False)
            with Horizontal(id="dialog-buttons"):
                yield Button("Close (esc)", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
