"""``expwatch snapshot``: the main screen's content as text or Markdown.

It runs the dashboard itself headless, waits for the first full scan and the
verdicts, and prints what the table would show, cell for cell: the same code
path as the TUI, without a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from state.sources import Source

NAME = "snapshot"
HELP = "print the dashboard's experiments table as text or Markdown (no terminal needed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directories", nargs="*", metavar="SOURCE",
        help="state directories (or other sources), shown in one table (default: $EXPWATCH_STATE_DIR or ./.state)",
    )
    parser.add_argument("--md", action="store_true", help="Markdown table")
    from app.commands._common import screen_width

    parser.add_argument("--width", type=screen_width, default=160, help="screen width the columns are laid out for (40 or more)")


def _shown(spec: str) -> str:
    """``spec`` as the header names it: a path as ``Path`` prints it, a URL as typed."""
    return spec if "://" in spec else str(Path(spec))


def _scan_failed(sources: list[Source], failures: dict[str, BaseException]) -> str | None:
    """One line naming each source whose scan failed (what it holds is unknown, not empty); None if none did."""
    said = [f"cannot read {s.location}: {_why(failures[s.name])}" for s in sources if s.name in failures]
    return "; ".join(said) or None


def _why(exc: BaseException) -> str:
    """What a failed scan says: an OS error's own words (as ``list`` says them), a hub's line, else the error."""
    from state.hub.connection import HubError

    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) if isinstance(exc, HubError) else f"{type(exc).__name__}: {exc}"


async def _collect(
    sources: list[Source], specs: list[str], width: int
) -> tuple[list[str], list[list[str]], str, str, list[str]]:
    from app.app import DashboardOptions, ExpwatchApp
    from app.cli import CommandError
    from runtime.exit_codes import EXIT_ERROR
    from state.text import printable
    from widgets.device_panel import DevicePanel
    from widgets.experiment_table import ExperimentTable
    from widgets.gpu_panel import GpuPanel
    from widgets.status_header import StatusHeader

    options = DashboardOptions(sources=tuple(specs), opened=tuple(sources), read_only=True, watch=False, gpus=True, refresh=0.2)
    app = ExpwatchApp(options)
    async with app.run_test(size=(width, 50)) as pilot:
        deadline = asyncio.get_running_loop().time() + 120
        while not app.scan_complete and app.is_running and asyncio.get_running_loop().time() < deadline:
            await pilot.pause(0.05)
        failed = _scan_failed(sources, app.scan_failures)
        if failed is not None:
            raise CommandError(failed, EXIT_ERROR)
        gpu = app.main.query_one(GpuPanel)
        for _ in range(40):  # the first GPU sample, bounded
            if gpu.shown is not None:
                break
            await pilot.pause(0.05)
        table = app.main.query_one(ExperimentTable)
        labels = [c.label for c in table.columns]
        rows = []
        for key in table.keys:
            cells = table._render_cells(table.get_row(key))  # noqa: SLF001 - the TUI's own cell renderer
            plain = [printable(c.plain if hasattr(c, "plain") else str(c)) for c in cells]
            rows.append(plain + [""] * (len(labels) - len(plain)))
        header = app.main.query_one(StatusHeader)
        from widgets.status_header import ORDER

        head = " ".join(f"{header.counts[s]} {s}" for s in ORDER if header.counts.get(s))
        gpus = gpu.shown
        devices = app.main.query_one(DevicePanel).shown
        extra = "\n".join(x.plain for x in (gpus, devices) if x is not None)
        failures = list(app.worker_failures)
    return labels, rows, head, extra, failures


def run(args: argparse.Namespace) -> int:
    from app.cli import resolve_sources
    from app.commands._common import open_sources

    specs = resolve_sources(args, args.directories)
    sources = open_sources(args, positional=args.directories)  # each must name something readable, as `list` asks
    with _quiet_log(getattr(args, "debug", False)):
        labels, rows, head, extra, failures = asyncio.run(_collect(sources, specs, args.width))
    for failure in failures:  # the log was quiet (``_quiet_log``): each failed worker still said, in one line
        print(f"expwatch: {failure}", file=sys.stderr)
    where = "  ".join(_shown(s) for s in specs)
    if args.md:
        print(f"**{where}**: {head or 'no experiments'}\n")
        print("| " + " | ".join(labels) + " |")
        print("|" + "|".join("---" for _ in labels) + "|")
        for row in rows:
            print("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
        if extra:
            print("\n```\n" + extra + "\n```")
        return 0
    widths = [max(len(labels[i]), *(len(r[i]) for r in rows)) if rows else len(labels[i]) for i in range(len(labels))]
    print(f"{where}: {head or 'no experiments'}")
    print("  ".join(l.ljust(w) for l, w in zip(labels, widths)).rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    if extra:
        print()
        print(extra)
    return 0


@contextlib.contextmanager
def _quiet_log(debug: bool) -> Iterator[None]:
    """The headless app's error log kept off stderr unless ``--debug``: a failed scan is the command's
    one-line error (``_scan_failed``), not a traceback before it."""
    logger = logging.getLogger("expwatch")
    if debug or logger.handlers:
        yield
        return
    quiet = logging.NullHandler()
    logger.addHandler(quiet)
    try:
        yield
    finally:
        logger.removeHandler(quiet)
