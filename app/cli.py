"""The ``expwatch`` command line.

Each subcommand is a module in ``app.commands`` that defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; they are found by name, so
adding a command is adding a module. Errors print one line (a traceback only
with ``--debug``) and map to meaningful exit codes.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
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
    # One source however it is spelled (s1, ./s1, /abs/s1, a link to it): the first spelling is kept.
    seen: dict[str, str] = {}
    for spec in given:
        seen.setdefault(spec if "://" in spec else os.path.realpath(spec), spec)
    return list(seen.values()) or [str(default_state_dir())]


def resolve_state_dir(args: argparse.Namespace) -> Path:
    """The one state directory of a command that works on one (the first source given)."""
    return Path(resolve_sources(args)[0])


def command_names() -> dict[str, str]:
    """Each command's name (the module's, ``_`` written ``-``) to its module, found without importing any."""
    names = {}
    for folder in app.commands.__path__:  # the modules' files, listed (pkgutil costs 1-2 ms to load)
        for file in os.listdir(folder):
            stem, dot, ext = file.partition(".")
            if ext == "py" and stem.isidentifier() and not stem.startswith("_"):
                names[stem.replace("_", "-")] = f"app.commands.{stem}"
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


class _VersionAction(argparse.Action):
    """``--version``, with the installed version looked up only when asked (importlib.metadata reads
    every installed package's metadata: 10-20 ms of every start-up otherwise)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        print(f"expwatch {version()}")
        parser.exit()


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("expwatch")
    except PackageNotFoundError:
        return "unknown (not installed)"


class ExpwatchParser(argparse.ArgumentParser):
    """The top-level parser: it also knows its subcommands' parsers, so each reports its own usage."""

    commands: dict[str, argparse.ArgumentParser]


def build_parser(only: str | None = None) -> ExpwatchParser:
    parser = ExpwatchParser(
        prog="expwatch",
        usage="expwatch [SOURCE ...] [dashboard options]\n       expwatch COMMAND [options]",
        description="Watch, inspect and resume long-running experiments. With no command, the dashboard opens "
        "on the sources given (`expwatch dashboard -h` lists its options).",
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 refused, 5 conflict, 130 interrupted.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    parser.commands = {}
    for module in _command_modules(only):
        cmd = sub.add_parser(module.NAME, prog=f"expwatch {module.NAME}", help=module.HELP, description=module.HELP)
        cmd.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        add_state_dir_argument(cmd)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run, _ends_at_once=getattr(module, "ENDS_AT_ONCE", False))
        parser.commands[module.NAME] = cmd
    return parser


def _looks_like_a_source(word: str) -> bool:
    """A word the user meant as a path or URL rather than as a command."""
    return os.path.lexists(word) or "://" in word or os.sep in word or "." in word or word.startswith("~")


def _unknown_command(parser: ExpwatchParser, word: str, known: list[str]) -> int:
    import difflib  # only for a mistyped command

    close = difflib.get_close_matches(word, known, n=1)
    hint = f" (did you mean `expwatch {close[0]}`?)" if close else ""
    parser.print_usage(sys.stderr)
    print(
        f"expwatch: unknown command {word!r}{hint}; commands: {', '.join(known)}. "
        "To open the dashboard on a directory, give its path.",
        file=sys.stderr,
    )
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    whole_process = argv is None
    if whole_process:
        # Start-up only allocates what lives as long as the process (modules, classes, parsers);
        # a collection in the middle of it walks them all for nothing (-X importtime put 40-80 ms
        # of "self" time on whichever module was importing when one ran). They are then frozen
        # out of the collector, so the command's own collections never walk them again.
        gc.disable()
    try:
        parsed = _parse(list(sys.argv[1:] if argv is None else argv))
    finally:
        if whole_process:
            gc.freeze()
            gc.enable()
    if isinstance(parsed, int):
        return parsed
    args = parsed
    guard = contextlib.nullcontext() if args.command in TERMINAL_COMMANDS else printable_output()
    with guard:
        code = _run(args)
    if whole_process and args._ends_at_once:
        end_at_once(code)
    return code


def end_at_once(code: int) -> None:
    """Exit now, its output flushed, without the interpreter's teardown: a command that only read and
    printed leaves nothing to clean up, and freeing every module and object took a 10,000-file
    ``list --json`` 4 % of its run (paired runs, os._exit against sys.exit: 0.959x)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a reader that stopped early (head), as _run takes it; a closed stream
            pass
        except OSError as exc:  # a full disk: said, and not a success (the teardown's own flush said it with 120)
            code = code or EXIT_ERROR
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(f"expwatch: cannot write the output: {exc.strerror or exc}\n")
    os._exit(code)


def _parse(argv: list[str]) -> argparse.Namespace | int:
    """The command line parsed, with only the module of the command given imported (the help
    and the version need them all); or the exit code of a line that needs no command run."""
    known = command_names()
    first = next((a for a in argv if not a.startswith("-")), None)
    if argv[:1] == ["help"]:
        build_parser().print_help()
        return EXIT_OK
    if argv and argv[0] == first and first not in known and not _looks_like_a_source(first):
        return _unknown_command(build_parser(first), first, list(known))  # imports no command
    top_level_only = {"-h", "--help", "--version"}
    if first is None and set(argv) & top_level_only:
        build_parser().parse_args(argv)  # prints the help or the version and exits
    if first is None or first not in known:
        # `expwatch [SOURCE ...] [options]` opens the dashboard.
        argv, first = ["dashboard", *argv], "dashboard"
    parser = build_parser(first)
    args, extra = parser.parse_known_args(argv)
    if extra:
        # An unknown flag is reported with the usage of the command it was given to.
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return args


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
    # `python -m app.cli` runs this file as __main__, and the commands import app.cli: a second copy,
    # whose CommandError this copy's handler would not know (a traceback-less "CommandError:" and exit 1).
    from app.cli import main as module_main

    sys.exit(module_main())
