"""The ``expwatch`` command line.

Each subcommand is a module in ``app.commands`` that defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; they are found by name, so
adding a command is adding a module. Errors print one line (a traceback only
with ``--debug``) and map to meaningful exit codes.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import app.commands
from runtime.exit_codes import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from state.text import printable


class CommandError(Exception):
    """A user-facing failure: printed as one line, exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR):
        super().__init__(message)
        self.code = code


#: Commands that hand the terminal to the dashboard (Textual writes its own escapes).
TERMINAL_COMMANDS = frozenset({"dashboard", "demo", "serve"})


class PrintableStream:
    """A text stream that puts everything written through ``state.text.printable``.

    The boundary where the CLI's text from data (ids, names, errors, paths,
    runner output) becomes terminal text: no escape sequence, C1 byte or
    surrogate written by a printer reaches the terminal, whichever printer
    it is. ``--json`` is unchanged: ``json.dumps`` escapes all of those
    already, so its output is printable ASCII.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text, keep_newlines=True))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def printable_output() -> Iterator[None]:
    """``sys.stdout`` and ``sys.stderr`` as ``PrintableStream`` while the block runs."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = PrintableStream(out), PrintableStream(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def default_state_dir() -> Path:
    return Path(os.environ.get("EXPWATCH_STATE_DIR") or ".state")


def add_state_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        "--state-dir",
        dest="sources",
        action="append",
        default=None,
        metavar="SOURCE",
        help="a state directory (or another source); repeat for several (default: $EXPWATCH_STATE_DIR or ./.state)",
    )


def resolve_sources(args: argparse.Namespace, positional: list[str] | None = None) -> list[str]:
    """The sources a command works on, as typed (paths or URLs): positional ones, then ``--source``s, else the default."""
    given = [str(s) for s in (*(positional or []), *(getattr(args, "sources", None) or []))]
    unique = list(dict.fromkeys(given))
    return unique or [str(default_state_dir())]


def resolve_state_dir(args: argparse.Namespace) -> Path:
    """The one state directory of a command that works on one (the first source given)."""
    return Path(resolve_sources(args)[0])


def _command_modules():
    for info in sorted(pkgutil.iter_modules(app.commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"app.commands.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            yield module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="expwatch",
        description="Watch, inspect and resume long-running experiments.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        cmd.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        add_state_dir_argument(cmd)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    known = {module.NAME for module in _command_modules()}
    first = next((a for a in argv if not a.startswith("-")), None)
    if first is None or first not in known:
        # `expwatch [STATE_DIR] [options]` opens the dashboard.
        argv = ["dashboard", *argv] if "dashboard" in known else argv
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USAGE
    guard = contextlib.nullcontext() if args.command in TERMINAL_COMMANDS else printable_output()
    with guard:
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args._run(args) or 0)
    except CommandError as exc:
        if args.debug:
            raise
        print(f"expwatch: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into head, less...
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:  # one line, not a traceback, unless --debug
        if args.debug:
            raise
        print(f"expwatch: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
