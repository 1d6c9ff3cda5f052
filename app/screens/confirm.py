"""A yes/no dialog that shows what is about to happen (or why it cannot)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from state.text import printable

ResultT = TypeVar("ResultT")
#: Below this many rows the dialogs' buttons take one row each instead of three.
SHORT_SCREEN = 30


class Dialog(ModalScreen[ResultT]):
    """A dialog whose body scrolls while its title, refusal and buttons stay on screen.

    The body gets what the screen leaves once the rest is laid out (CSS cannot say
    "the rest of an auto-height box"), so at 80x24 a long dry run scrolls instead of
    pushing the buttons off the screen.
    """

    def on_mount(self) -> None:
        self._fit_buttons()
        self.call_after_refresh(self._fit_body)

    def on_resize(self) -> None:
        self._fit_buttons()
        self.call_after_refresh(self._fit_body)

    def _fit_buttons(self) -> None:
        for button in self.query(Button):
            button.compact = self.size.height < SHORT_SCREEN  # one row instead of three at 80x24

    def _fit_body(self) -> None:
        dialog = self.query_one("#dialog")
        body = self.query_one("#dialog-body")
        fixed = sum(child.outer_size.height for child in dialog.children if child is not body)
        frame = dialog.outer_size.height - dialog.size.height
        room = int(self.size.height * 0.9) - frame - fixed
        body.styles.max_height = max(3, room)


#: What a dialog dismisses with: the confirm button, the alternative one, or None (cancelled).
CONFIRM = "confirm"
ALTERNATIVE = "alternative"


@dataclass(frozen=True)
class Alternative:
    """A second way to go ahead (resume retrying the failed runs): a button, key ``f``."""

    label: str


class ConfirmDialog(Dialog[str | None]):
    """Dismisses with ``CONFIRM`` (or ``ALTERNATIVE``) only on an explicit choice; Esc, n and Cancel give None.

    With ``refusal`` set the action is not allowed: the dialog says why, once, at the
    top, and offers only Close. The body scrolls and the buttons stay on screen at
    any size down to 80x24.
    """

    BINDINGS = [
        Binding("escape,n", "cancel", "Cancel"),
        Binding("y", "confirm", "Confirm", show=False),
        Binding("f", "alternative", "Alternative", show=False),
    ]

    def __init__(
        self,
        title: str,
        lines: Sequence[str],
        *,
        confirm_label: str = "Confirm",
        refusal: str | None = None,
        alternative: Alternative | None = None,
    ) -> None:
        super().__init__()
        self.title_text = title
        # The refusal is said once, on top: a plan's own "Refused: ..." line is not repeated below it.
        self.lines = [line for line in lines if refusal is None or line != f"Refused: {refusal}"]
        while self.lines and not self.lines[-1].strip():
            self.lines.pop()
        self.confirm_label = confirm_label
        self.refusal = refusal
        self.alternative = alternative if refusal is None else None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            # Titles, lines and refusals carry ids and reasons from files: text, never markup.
            yield Label(Content(printable(self.title_text)), id="dialog-title")
            if self.refusal:
                yield Static(Content(printable(f"Not allowed: {self.refusal}", keep_newlines=True)), id="dialog-refusal")
            with VerticalScroll(id="dialog-body"):
                yield Static(Content(printable("\n".join(self.lines), keep_newlines=True)))
            with Horizontal(id="dialog-buttons"):
                if self.refusal is None:
                    yield Button(f"{self.confirm_label} (y)", variant="warning", id=CONFIRM)
                if self.alternative is not None:
                    yield Button(f"{self.alternative.label} (f)", variant="warning", id=ALTERNATIVE)
                yield Button("Close (esc)" if self.refusal else "Cancel (n)", id="cancel")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#cancel" if self.refusal else f"#{CONFIRM}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id if event.button.id in (CONFIRM, ALTERNATIVE) else None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_confirm(self) -> None:
        if self.refusal is None:
            self.dismiss(CONFIRM)

    def action_alternative(self) -> None:
        if self.alternative is not None:
            self.dismiss(ALTERNATIVE)


class HelpScreen(Dialog[None]):
    """One screen's keys (each screen passes its own, and its own title)."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, rows: Sequence[tuple[str, str]], read_only: bool, *, title: str = "expwatch keys") -> None:
        super().__init__()
        self.rows = rows
        self.read_only = read_only
        self.title_text = title

    def compose(self) -> ComposeResult:
        # Two columns: a description that wraps stays beside its key.
        body = Table.grid(padding=(0, 2))
        body.add_column(justify="right", no_wrap=True, style="bold")
        body.add_column()
        for key, text in self.rows:
            body.add_row(Text(key), Text(text))
        if self.read_only:
            body.add_row(Text(""), Text(""))
            body.add_row(Text(""), Text("Read-only observer mode: resume, mark stale, stop and clean up are off."))
        with Vertical(id="dialog"):
            yield Label(Content(self.title_text), id="dialog-title")
            with VerticalScroll(id="dialog-body"):
                yield Static(body)
            with Horizontal(id="dialog-buttons"):
                yield Button("Close (esc)", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
