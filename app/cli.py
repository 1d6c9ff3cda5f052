"""The ``expwatch`` command line.

Each subcommand is a module in ``app.commands`` that defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; they are found by name, so
adding a command is adding a module. Errors print one line (a traceback only
with ``--debug``) and map to meaningful exit codes.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import pkgutil
import sys
from pathlib import Path

import app.commands
from runtime.exit_codes import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE


class CommandError(Exception):
    """A user-facing failure: printed as one line, exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR):
        super().__init__(message)
        self.code = code


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


def command_names() -> dict[str, str]:
    """Each command's name (the module's, ``_`` written ``-``) to its module, found without importing any."""
    names = {}
    for info in pkgutil.iter_modules(app.commands.__path__):
        if not info.name.startswith("_"):
            names[info.name.replace("_", "-")] = f"app.commands.{info.name}"
    return dict(sorted(names.items()))


def _command_modules(only: str | None = None):
    """The command modules (only ``only``'s when given): a command run imports its own module alone,
    so start-up costs what that command needs, not what every command needs."""
    for name, module_name in command_names().items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        if hasattr(module, "NAME") and hasattr(module, "run"):
            yield module


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="expwatch",
        description="Watch, inspect and resume long-running experiments.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules(only):
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        cmd.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        add_state_dir_argument(cmd)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    whole_process = argv is None
    if whole_process:
        # Start-up only allocates what lives as long as the process (modules, classes, parsers);
        # a collection in the middle of it walks them all for nothing (-X importtime put 40-80 ms
        # of "self" time on whichever module was importing when one ran). They are then frozen
        # out of the collector, so the command's own collections never walk them again.
        gc.disable()
    argv = list(sys.argv[1:] if argv is None else argv)
    known = command_names()
    first = next((a for a in argv if not a.startswith("-")), None)
    if first is None or first not in known:
        # `expwatch [STATE_DIR] [options]` opens the dashboard.
        if "dashboard" in known:
            argv, first = ["dashboard", *argv], "dashboard"
        else:
            first = None
    try:
        parser = build_parser(first)
        args = parser.parse_args(argv)
    finally:
        if whole_process:
            gc.freeze()
            gc.enable()
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USAGE
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
