"""One step of an experiment: its recorded source, highlighted, with what is happening in it.

The source shown is the text recorded when the experiment started (what the
runs actually executed). Two flags sit above it: the processes currently in
this step, and whether the function's text on disk no longer matches the
recorded hash (someone edited the study while it ran).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.highlight import highlight
from textual.widgets import Static

from state.inspection.steps import SourceCheck, StepView
from state.text import printable


def numbered_source(source: str, first_line: int) -> Content:
    """Highlighted Python with line numbers starting at the function's first line."""
    code = highlight(printable(source.rstrip("\n"), keep_newlines=True), language="python")
    lines = code.split("\n", allow_blank=True)
    width = len(str(first_line + len(lines) - 1))
    parts: list[Content | tuple[str, str] | str] = []
    for n, line in enumerate(lines):
        if n:
            parts.append("\n")
        parts.append((f"{first_line + n:>{width}} │ ", "$text-muted"))
        parts.append(line)
    return Content.assemble(*parts)


def source_content(view: StepView) -> Content:
    if not view.source:
        return Content.styled("source not recorded", "italic $text-muted")
    return numbered_source(view.source, view.first_line)


def step_header(view: StepView) -> Content:
    parts: list[Content | tuple[str, str] | str] = [(printable(view.location), "$text-muted")]
    if view.running_in:
        parts += ["\n", ("● running here: " + printable(", ".join(view.running_in)), "bold $text-success")]
    if view.last_in:
        parts += ["\n", ("■ last step of: " + printable(", ".join(view.last_in)), "$text-muted")]
    if view.check is SourceCheck.CHANGED:
        parts += ["\n", ("▲ changed on disk since the run started", "bold $text-warning")]
        if view.check_detail:
            parts += [("  " + printable(view.check_detail), "$text-muted")]
    elif view.check is not SourceCheck.SAME:
        label = "source file missing" if view.check is SourceCheck.MISSING else "cannot compare with disk"
        parts += ["\n", (f"? {label}", "$text-muted")]
        if view.check_detail:
            parts += [(": " + printable(view.check_detail), "$text-muted")]
    return Content.assemble(*parts)


class StepSource(Vertical):
    """A bordered panel for one step; ``update`` swaps its content in place."""

    DEFAULT_CSS = """
    StepSource {
        height: auto;
        border: round $primary 50%;
        padding: 0 1;
        margin: 0 0 1 0;
    }
    StepSource.-running { border: round $success; }
    StepSource.-changed { border: round $warning; }
    StepSource > .step-source--header { height: auto; margin-bottom: 1; }
    StepSource > .step-source--code { height: auto; }
    """

    def __init__(self, view: StepView, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._view = view
        self._apply_classes()

    @property
    def view(self) -> StepView:
        return self._view

    def compose(self) -> ComposeResult:
        self.border_title = Content(printable(self._view.qualname))
        yield Static(step_header(self._view), classes="step-source--header")
        yield Static(source_content(self._view), classes="step-source--code")

    def update(self, view: StepView) -> None:
        if view == self._view:
            return
        self._view = view
        self._apply_classes()
        if self.is_mounted:
            self._render_view()

    def _apply_classes(self) -> None:
        self.set_class(bool(self._view.running_in), "-running")
        self.set_class(self._view.check is SourceCheck.CHANGED, "-changed")

    def _render_view(self) -> None:
        view = self._view
        self.border_title = Content(printable(view.qualname))
        self.query_one(".step-source--header", Static).update(step_header(view))
        self.query_one(".step-source--code", Static).update(source_content(view))


__all__ = ["SourceCheck", "StepSource", "StepView", "numbered_source"]
