"""The column picker: which of a table's columns to show.

Ticked are the columns shown now. "Show" keeps exactly the ticked ones (the
table then scrolls sideways when they do not fit); "Fit to width" goes back to
dropping the least important columns on narrow screens. Dismisses with the
chosen keys, ``()`` for fit to width, or None when cancelled.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Label, SelectionList

from widgets.virtual_table import Column

from app.screens.confirm import Dialog

FIT = ()


class ColumnPicker(Dialog[tuple[str, ...] | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("y", "show", "Show these"),
        Binding("f", "fit", "Fit to width"),
    ]

    def __init__(self, columns: Sequence[Column], hidden: Sequence[Column], chosen: Sequence[str] | None) -> None:
        super().__init__()
        self.columns = tuple(columns)
        self.hidden = {c.key for c in hidden}
        self.shown = set(chosen) if chosen is not None else {c.key for c in columns} - self.hidden

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Content("Columns to show (space ticks)"), id="dialog-title")
            with VerticalScroll(id="dialog-body"):
                yield SelectionList[str](
                    *((Content(c.name + ("  (hidden by the width)" if c.key in self.hidden else "")), c.key, c.key in self.shown)
                      for c in self.columns),
                    id="column-list",
                )
            with Horizontal(id="dialog-buttons"):
                yield Button("Show these (y)", variant="primary", id="show")
                yield Button("Fit to width (f)", id="fit")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(SelectionList).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"show": self.action_show, "fit": self.action_fit}.get(event.button.id or "", self.action_cancel)()

    def action_show(self) -> None:
        picked = set(self.query_one(SelectionList).selected)
        keys = tuple(c.key for c in self.columns if c.key in picked)
        if keys:
            self.dismiss(keys)
        else:
            self.notify("tick at least one column", severity="warning")

    def action_fit(self) -> None:
        self.dismiss(FIT)

    def action_cancel(self) -> None:
        self.dismiss(None)


__all__ = ["FIT", "ColumnPicker"]
