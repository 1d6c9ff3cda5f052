"""Helpers shared by the experiment commands (not a command: the underscore hides it)."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from app.cli import CommandError, resolve_sources
from runtime.exit_codes import EXIT_CONFLICT, EXIT_ERROR, EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_USAGE
from state.atomic import LockTimeout
from state.hub.connection import redact
from state.paths import UnsafePathError
from state.sources import Source, SourceError, opening
from state.sources.opening import not_a_directory
from state.text import printable
from state.store import (
    BrokenExperimentError,
    ConflictError,
    ExperimentNotFound,
    ReadOnlyStoreError,
    StateStore,
    StoreError,
)
from state.durations import age
from state.local_time import naive_local


def state_dir(args: argparse.Namespace, *, must_exist: bool = True) -> Path:
    spec = resolve_sources(args)[0]  # as typed: Path() would fold a URL's '//'
    if must_exist:
        return require_directory(spec, getattr(args, "command", None))
    return Path(spec)


#: Commands that act on one experiment: on a hub, that host's agent acts for them.
_ACTIONS = frozenset({"mark-stale", "resume", "stop"})


def require_directory(spec: str | Path, command: str | None = None) -> Path:
    """``spec`` as a ``Path`` if it is a state directory; otherwise the one message every command
    gives: another kind of source (an MLtraq database, a hub) is a usage error (exit 2) naming it
    as typed, a spec of no kind at all is not found (exit 3)."""
    refusal = other_kind(spec, command or "this command")
    if refusal is not None:
        raise CommandError(refusal, EXIT_USAGE)
    problem = not_a_directory(spec)
    if problem is not None:
        raise CommandError(problem, EXIT_NOT_FOUND)
    return Path(spec)


def other_kind(spec: str | Path, command: str, *, writes: bool = False) -> str | None:
    """Why ``command`` (which works on, or ``writes`` to, a state directory) cannot take ``spec``
    because it is a source of another kind, told as ``open_source`` tells kinds; None when it is not.

    A spec that looks like a kind's but cannot be opened (``sqlite:///`` naming no file) is that
    kind's one-line error, not found (exit 3), as ``list`` gives it."""
    text = str(spec)
    try:
        kind = opening.kind_of(text)
    except SourceError as exc:
        raise CommandError(str(exc), EXIT_NOT_FOUND) from None
    if kind is None:
        return None
    if "://" in text:
        text = redact(text)  # as typed, but a password in a URL is never printed
    verb = "writes to" if writes else "works on"
    why = f"{command} {verb} a state directory; {text} is {kind.what}"
    if kind.name == "mltraq":
        return f"{why}, which expwatch only reads"
    if kind.name == "redis" and command in _ACTIONS:
        return (f"{why}: {command} is done on the experiment's host (the dashboard on this hub asks that host's agent; "
                f"or run `expwatch {command} --source DIR` there)")
    if kind.name == "redis" and command == "run":
        return f"{why} (use --hub URL to share run state through it)"
    return why


# -- argument types: a bad value is a usage error (exit 2, with the command's own usage) --------
def _seconds(text: str, *, zero: bool) -> float:
    what = "0 or more seconds" if zero else "a positive number of seconds"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes {what}, got {text!r}") from None
    if not (value >= 0 if zero else value > 0) or value == float("inf"):
        raise argparse.ArgumentTypeError(f"takes {what}, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    return _seconds(text, zero=False)


def non_negative_seconds(text: str) -> float:
    return _seconds(text, zero=True)


def _int_at_least(least: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"takes {what}, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"takes {what}, got {text!r}")
        return value

    return parse


positive_count = _int_at_least(1, "a whole number of 1 or more")
count = _int_at_least(0, "a whole number of 0 or more")
#: A screen width a table can be laid out in (the dashboard's own floor is 80; narrower still lays out).
screen_width = _int_at_least(40, "a width of 40 columns or more")


def experiment_id(text: str) -> str:
    """An id a new experiment's file can be named after (what no file name can hold is a usage error)."""
    from state.paths import sanitize_experiment_id, unsafe_id_reason

    reason = unsafe_id_reason(text)
    if reason is None and sanitize_experiment_id(text).startswith("."):
        reason = "an experiment id that starts with '.' would name a hidden file"
    if reason is not None:
        raise argparse.ArgumentTypeError(f"{reason}: {printable(text)!r}")
    return text


def gpu_ids(text: str) -> tuple[int, ...]:
    from runtime.runner.args import parse_gpus  # the runner's argument types: only the commands with --gpus
    from runtime.runner.errors import RunnerError

    try:
        return parse_gpus(text)
    except RunnerError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--gpus ")) from None


def open_store(args: argparse.Namespace, *, read_only: bool) -> StateStore:
    return StateStore(state_dir(args), read_only=read_only)


def open_sources(args: argparse.Namespace, *, read_only: bool = True, positional: list[str] | None = None) -> list[Source]:
    """Every source given (``positional`` ones, then each ``--source``) opened, each must exist,
    with labels unique across them."""
    try:
        return opening.open_sources(resolve_sources(args, positional), read_only=read_only)
    except SourceError as exc:
        raise CommandError(str(exc), EXIT_NOT_FOUND) from None


def add_read_only_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--read-only", action="store_true", help="observer mode: refuse to change anything (for scripts)"
    )


def _refusals() -> tuple[type[Exception], ...]:
    """The errors that refuse a change; ``ActionRefused`` only once the actions were imported.

    A command that never imported them cannot raise it, and importing the
    actions package only to name it was 20-30 ms of `expwatch run`'s start-up.
    """
    actions = sys.modules.get("runtime.actions.common")
    return (ReadOnlyStoreError,) if actions is None else (actions.ActionRefused, ReadOnlyStoreError)


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Store and action errors as one-line command errors with their exit codes."""
    try:
        yield
    except (StoreError, LockTimeout, PermissionError, UnsafePathError, *_refusals()) as exc:
        raise command_error(exc) from None


def command_error(exc: Exception) -> CommandError:
    """The one-line command error, with its exit code, for a store or action error."""
    if isinstance(exc, ExperimentNotFound):
        return CommandError(str(exc), EXIT_NOT_FOUND)
    if isinstance(exc, _refusals()):
        return CommandError(str(exc), EXIT_REFUSED)
    if isinstance(exc, ConflictError):
        return CommandError(str(exc), EXIT_CONFLICT)
    if isinstance(exc, LockTimeout):
        return CommandError(f"{exc} (another expwatch is writing it)", EXIT_CONFLICT)
    if isinstance(exc, BrokenExperimentError):
        return CommandError(f"unreadable: {exc}", EXIT_ERROR)
    if isinstance(exc, PermissionError):
        return CommandError(f"permission denied: {exc.filename or exc}", EXIT_REFUSED)
    if isinstance(exc, UnsafePathError):  # a sidecar that is a symlink, a path that leaves the directory
        return CommandError(str(exc), EXIT_REFUSED)
    return CommandError(str(exc), EXIT_ERROR)


def report_done(line: str, journal_error: str | None) -> int:
    """Print what an action did; a journal line it could not write is said on stderr (exit 1).

    The action itself happened: the first line says so, whatever follows.
    """
    print(line)
    if journal_error is None:
        return 0
    print(f"expwatch: done, but {journal_error}", file=sys.stderr)
    return EXIT_ERROR


def age_of(when: datetime | None, now: datetime | None = None) -> str:
    return age(now or datetime.now().astimezone(), when, missing="-")


def iso(when: datetime | None, *, naive: bool = False) -> str | None:
    """A timestamp as precise as the file: microseconds kept; ``naive`` gives back a naive local
    time (as llenergymeasure writes them) instead of the offset expwatch reads it with."""
    if when is None:
        return None
    if naive:
        return naive_local(when).isoformat()
    return when.isoformat()


_UNPRINTABLE = re.compile(r"[^\x00-\x7e]")


def _escape_non_ascii(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def dump_json(value: object) -> str:
    """What ``json.dumps(value, indent=2)`` prints, ASCII only (data never reaches a terminal raw),
    through orjson: with ``indent`` set, ``json`` falls back to its pure-Python encoder (0.6 s for
    10,000 experiments), pydantic-core's serializer took 60-80 ms and orjson 15-20 ms. Plain JSON
    values only; a number may be spelled differently (``1e-05`` as ``0.00001``), never valued differently."""
    return _json_bytes(value).decode("ascii")


#: Items of a long list written per ``orjson`` call by ``print_json``.
JSON_CHUNK = 512


def print_json(value: object) -> None:
    """``print(dump_json(value))`` straight to stdout's bytes: the text is printable ASCII already,
    so it skips the printable-stream pass (40 ms of a 10,000-experiment ``list --json``).

    A list is written ``JSON_CHUNK`` items at a time, the same bytes as one call gives:
    a 10,000-experiment listing is 15 MB of text, and each fresh megabyte costs the process
    256 page faults (about 1 ms here); in chunks the same memory serves every write. Its
    items may come already written, as ``item_bytes`` writes them (``list --json`` writes
    a row as it reads it).
    """
    chunks = _item_chunks(value) if type(value) is list and value else iter((_json_bytes(value),))
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        print(b"".join(chunks).decode("ascii"))
        return
    sys.stdout.flush()
    for chunk in chunks:
        buffer.write(chunk)
    buffer.write(b"\n")
    buffer.flush()


def item_bytes(value: object) -> bytes:
    """``value`` as ``print_json`` writes it as an item of a list: indented one level, no comma."""
    return _json_bytes([value])[2:-2]  # "[\n" + item + "\n]"


def _item_chunks(items: list[object]) -> Iterator[bytes]:
    """The text of the non-empty list ``items`` (see ``print_json``) in pieces, without its last newline;
    a run of objects in one ``orjson`` call."""
    lead = b"[\n"
    for start in range(0, len(items), JSON_CHUNK):
        parts: list[bytes] = []
        objects: list[object] = []
        for item in items[start : start + JSON_CHUNK]:
            if type(item) is bytes:
                if objects:
                    parts.append(_json_bytes(objects)[2:-2])  # "[\n" + the items joined + "\n]"
                    objects = []
                parts.append(item)
            else:
                objects.append(item)
        if objects:
            parts.append(_json_bytes(objects)[2:-2])
        yield lead + b",\n".join(parts)
        lead = b",\n"
    yield b"\n]"


def _json_bytes(value: object) -> bytes:
    import orjson

    try:
        data = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except TypeError:  # a lone surrogate (an undecodable file name), an integer past 64 bits
        data = json.dumps(value, indent=2).encode("ascii")
    if data.isascii() and b"\x7f" not in data:
        return data
    # Non-ASCII, and DEL, which JSON leaves raw and a terminal need not: written as escapes.
    return _UNPRINTABLE.sub(_escape_non_ascii, data.decode("utf-8")).encode("ascii")


def table(rows: list[list[str]], *, markdown: bool = False) -> str:
    """Plain aligned columns, or a Markdown table."""
    rows = [[printable(c) for c in row] for row in rows]  # escapes widen a cell: align what is printed
    if markdown:
        def cell(text: str) -> str:
            return text.replace("|", "\\|").replace("\n", " ")

        head, *body = rows
        lines = ["| " + " | ".join(cell(c) for c in head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
