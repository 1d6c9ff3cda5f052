"""The one sanitiser between data and a screen or a terminal.

Ids, names, errors, host names, fields, step source and logs come from files
that anyone with write access to a shared directory can craft. Written to a
terminal as they are, an escape sequence in them moves the cursor, retitles
the window or hides lines; a C1 byte (0x9b is a one-byte CSI) does the same on
terminals that honour it; a lone surrogate cannot even be encoded and kills
whoever prints it. Every text printer and widget puts data through
``printable`` (or a wrapper around it) before it is shown: each character that
is not printable comes out as a visible escape (``\\x1b``, ``\\u202e``,
``\\udcff``), so the reader sees that something odd is there. Markup is the
other half of the rule and belongs to the widgets: data goes into ``Text`` or
``Content`` objects, never into a markup string. ``--json`` output stays exact
(JSON escapes control characters itself).
"""

from __future__ import annotations

import re
from typing import Any

_NOT_PRINTABLE_CACHE: dict[str, str] = {}
_TAB_OR_NEWLINE = re.compile(r"[\t\n]")


def escape_char(ch: str) -> str:
    """The visible stand-in for one character that must not reach a terminal.

    Non-printable is what ``str.isprintable`` rejects: C0 and C1 controls, DEL,
    format characters (bidi overrides, zero-width joiners), separators other
    than space, surrogates, unassigned code points.
    """
    shown = _NOT_PRINTABLE_CACHE.get(ch)
    if shown is None:
        code = ord(ch)
        if code < 0x100:
            shown = f"\\x{code:02x}"
        elif code < 0x10000:
            shown = f"\\u{code:04x}"
        else:
            shown = f"\\U{code:08x}"
        _NOT_PRINTABLE_CACHE[ch] = shown
    return shown


def printable(text: Any, *, keep_newlines: bool = False) -> str:
    """``text`` (anything: it is ``str()``-ed) safe to write to a terminal, one line unless asked.

    Printable text comes back as it is (the common case costs one
    ``isprintable`` call). Otherwise each non-printable character becomes its
    escape; with ``keep_newlines`` a newline stays a newline and a tab becomes
    spaces (multi-line text: tracebacks, source, logs), else a tab or a
    newline is one space (a table cell, a one-line message).
    """
    if type(text) is not str:
        text = str(text)
    if text.isprintable():
        return text
    if keep_newlines and "\t" not in text and text.replace("\n", "").isprintable():
        return text  # lines with nothing to escape (a JSON answer of megabytes): no pass per line
    if keep_newlines:
        return "\n".join(_line(part.expandtabs(4)) for part in text.split("\n"))
    return _line(text.replace("\t", " ").replace("\n", " "))


def _line(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else escape_char(ch) for ch in text)


def printable_offsets(text: str, *, keep_newlines: bool = False) -> tuple[str, list[int]] | None:
    """The sanitised ``text`` and, per input character, where it starts in the result.

    None when nothing needs to change. For callers that must move style spans
    along with the text (a Rich ``Text`` or a Textual ``Content`` with colours).
    A tab becomes one space, and so does a newline unless ``keep_newlines``.
    """
    if text.isprintable() or (keep_newlines and text.replace("\n", "").isprintable()):
        return None
    out: list[str] = []
    offsets = [0]
    for ch in text:
        if ch == "\n":
            piece = ch if keep_newlines else " "
        else:
            piece = " " if ch == "\t" else (ch if ch.isprintable() else escape_char(ch))
        out.append(piece)
        offsets.append(offsets[-1] + len(piece))
    return "".join(out), offsets


def printable_same_length(line: str) -> str:
    """One line with each non-printable character as one ``\ufffd`` (a tab as a space).

    For views that index into the original text (search columns in the raw
    file view): the result has exactly as many characters as ``line``.
    """
    if line.isprintable():
        return line
    return "".join(" " if ch == "\t" else (ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}") for ch in line)


def one_line(text: Any, limit: int | None = None) -> str:
    """``printable`` on one line, with runs of whitespace folded and an optional length cap."""
    shown = printable(" ".join(str(text).split()) if _TAB_OR_NEWLINE.search(str(text)) else text)
    if limit is not None and len(shown) > limit:
        shown = shown[: max(0, limit - 1)] + "…"
    return shown


__all__ = ["escape_char", "one_line", "printable", "printable_offsets", "printable_same_length"]
