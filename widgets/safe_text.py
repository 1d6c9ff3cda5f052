"""Rich ``Text`` and Textual ``Content`` through the sanitiser, colours kept.

Widgets that build styled text from data (an error in red, a status with its
symbol, a highlighted traceback) hand it here before it is drawn: the
characters go through ``state.text`` and every style span moves with the
characters it covered, so an escape in the data never reaches the terminal and
a colour never lands on the wrong characters. Neither type is ever parsed as
markup here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from rich.text import Span, Text
from textual.content import Content
from textual.content import Span as ContentSpan

from state.text import printable, printable_offsets

SpanT = TypeVar("SpanT")


def _moved(spans: Iterable[Any], offsets: list[int], make: Callable[[int, int, Any], SpanT]) -> list[SpanT]:
    """Spans over the original characters, moved to where those characters are after escaping."""
    last = len(offsets) - 1
    return [make(offsets[min(s.start, last)], offsets[min(s.end, last)], s.style) for s in spans]


def safe_text(cell: str | Text, *, keep_newlines: bool = False) -> Text:
    """``cell`` as a ``Text`` holding only printable characters (on one line unless asked)."""
    if not isinstance(cell, Text):
        return Text(printable(cell, keep_newlines=keep_newlines))
    converted = printable_offsets(cell.plain, keep_newlines=keep_newlines)
    if converted is None:
        return cell
    plain, offsets = converted
    out = Text(plain, style=cell.style, justify=cell.justify, overflow=cell.overflow, no_wrap=cell.no_wrap, end=cell.end)
    out.spans[:] = _moved(cell.spans, offsets, Span)
    return out


def safe_content(content: str | Content, *, keep_newlines: bool = True) -> Content:
    """``content`` as a ``Content`` holding only printable characters (newlines kept unless asked)."""
    if not isinstance(content, Content):
        return Content(printable(content, keep_newlines=keep_newlines))
    converted = printable_offsets(content.plain, keep_newlines=keep_newlines)
    if converted is None:
        return content
    plain, offsets = converted
    return Content(plain, _moved(content.spans, offsets, ContentSpan))


__all__ = ["safe_content", "safe_text"]
