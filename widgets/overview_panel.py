"""Labelled values in titled sections: the inspector's Overview.

Values arrive as ``Content`` (already styled with theme variables where the
value has a meaning, like a status) or plain strings, which are shown as text
and never parsed as markup: they come from files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual.content import Content
from textual.widgets import Static

from state.text import printable
from widgets.safe_text import safe_content

Value = Content | str


@dataclass(frozen=True, slots=True)
class OverviewSection:
    title: str
    rows: tuple[tuple[str, Value], ...] = ()
    note: Value | None = None
    """Text under the title, before the rows (an explanation, an error)."""


def render_sections(sections: Sequence[OverviewSection]) -> Content:
    parts: list[Content | str | tuple[str, str]] = []
    for n, section in enumerate(sections):
        if n:
            parts.append("\n\n")
        parts.append((section.title, "bold $text-accent"))
        if section.note is not None:
            parts += ["\n", section.note if isinstance(section.note, Content) else printable(section.note, keep_newlines=True)]
        width = max((len(label) for label, _ in section.rows), default=0)
        for label, value in section.rows:
            parts += ["\n", (f"  {label:<{width}}  ", "$text-muted")]
            if isinstance(value, Content):
                indent = " " * (width + 4)
                lines = value.split("\n", allow_blank=True)
                for i, line in enumerate(lines):
                    if i:
                        parts += ["\n", indent]
                    parts.append(line)
            else:
                parts.append(printable(value, keep_newlines=True).replace("\n", "\n" + " " * (width + 4)))
    return Content.assemble(*parts)


class OverviewPanel(Static):
    """Sections of ``label  value`` lines; ``show`` replaces them (cheap, text only)."""

    DEFAULT_CSS = """
    OverviewPanel {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes, markup=False)
        self._sections: tuple[OverviewSection, ...] = ()

    @property
    def sections(self) -> tuple[OverviewSection, ...]:
        return self._sections

    def show(self, sections: Sequence[OverviewSection]) -> None:
        sections = tuple(sections)
        if sections == self._sections:
            return
        self._sections = sections
        self.update(safe_content(render_sections(sections)))


__all__ = ["OverviewPanel", "OverviewSection", "render_sections"]
