"""Helpers shared by the experiment commands (not a command: the underscore hides it)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from app.cli import CommandError, resolve_sources, resolve_state_dir
from runtime.exit_codes import EXIT_CONFLICT, EXIT_ERROR, EXIT_NOT_FOUND, EXIT_REFUSED
from state.atomic import LockTimeout
from state.sources import Source, SourceError, opening
from state.store import (
    BrokenExperimentError,
    ConflictError,
    ExperimentNotFound,
    ReadOnlyStoreError,
    StateStore,
    StoreError,
)
from state.durations import age


def state_dir(args: argparse.Namespace, *, must_exist: bool = True) -> Path:
    root = resolve_state_dir(args)
    if must_exist and not root.is_dir():
        raise CommandError(f"no state directory at {root}", EXIT_NOT_FOUND)
    return root


def open_store(args: argparse.Namespace, *, read_only: bool) -> StateStore:
    return StateStore(state_dir(args), read_only=read_only)


def open_sources(args: argparse.Namespace, *, read_only: bool = True) -> list[Source]:
    """Every ``--source`` opened (each must exist), with labels unique across them."""
    try:
        return opening.open_sources(resolve_sources(args), read_only=read_only)
    except SourceError as exc:
        raise CommandError(str(exc), EXIT_NOT_FOUND) from None


def add_read_only_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--read-only", action="store_true", help="observer mode: refuse to change anything (for scripts)"
    )


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Store and action errors as one-line command errors with their exit codes."""
    from runtime.actions import ActionRefused

    try:
        yield
    except ExperimentNotFound as exc:
        raise CommandError(str(exc), EXIT_NOT_FOUND) from None
    except (ActionRefused, ReadOnlyStoreError) as exc:
        raise CommandError(str(exc), EXIT_REFUSED) from None
    except ConflictError as exc:
        raise CommandError(str(exc), EXIT_CONFLICT) from None
    except LockTimeout as exc:
        raise CommandError(f"{exc} (another expwatch is writing it)", EXIT_CONFLICT) from None
    except BrokenExperimentError as exc:
        raise CommandError(f"unreadable: {exc}", EXIT_ERROR) from None
    except StoreError as exc:
        raise CommandError(str(exc), EXIT_ERROR) from None
    except PermissionError as exc:
        raise CommandError(f"permission denied: {exc.filename or exc}", EXIT_REFUSED) from None


def age_of(when: datetime | None, now: datetime | None = None) -> str:
    return age(now or datetime.now().astimezone(), when, missing="-")


def iso(when: datetime | None, *, naive: bool = False) -> str | None:
    """A timestamp as precise as the file: microseconds kept; ``naive`` gives back a naive local
    time (as llenergymeasure writes them) instead of the offset expwatch reads it with."""
    if when is None:
        return None
    if naive:
        return when.astimezone().replace(tzinfo=None).isoformat()
    return when.isoformat()


def table(rows: list[list[str]], *, markdown: bool = False) -> str:
    """Plain aligned columns, or a Markdown table."""
    if markdown:
        def cell(text: str) -> str:
            return text.replace("|", "\\|").replace("\n", " ")

        head, *body = rows
        lines = ["| " + " | ".join(cell(c) for c in head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
