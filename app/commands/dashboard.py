"""``expwatch [STATE_DIR]``: the dashboard."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from app.app import DashboardOptions, run_dashboard

NAME = "dashboard"
HELP = "open the dashboard on a state directory (the default command)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directories", nargs="*", metavar="SOURCE", help="state directories (or other sources), shown in one table (default: $EXPWATCH_STATE_DIR or ./.state)"
    )
    parser.add_argument("--read-only", action="store_true", help="observer mode: no key or action can change anything")
    parser.add_argument(
        "--poll",
        nargs="?",
        type=float,
        const=2.0,
        default=None,
        metavar="SECONDS",
        help="scan the directory every SECONDS (default 2) instead of file-system events (network filesystems)",
    )
    parser.add_argument("--refresh", type=float, default=1.0, metavar="SECONDS", help="GPU and process sampling interval")
    parser.add_argument("--resume-template", default=os.environ.get("EXPWATCH_RESUME_TEMPLATE"), help="command to resume llenergymeasure experiments")
    parser.add_argument("--simulate-gpus", type=int, default=None, metavar="N", help="show N simulated GPUs")


def run(args: argparse.Namespace) -> int:
    from app.cli import CommandError, resolve_sources
    from runtime.exit_codes import EXIT_NOT_FOUND
    from state.sources import SourceError, open_sources

    sources = resolve_sources(args, args.directories)
    try:
        open_sources(sources, read_only=True)  # each must name something readable, before the screen opens
    except SourceError as exc:
        raise CommandError(str(exc), EXIT_NOT_FOUND) from None
    if args.refresh <= 0 or (args.poll is not None and args.poll <= 0):
        raise CommandError("--refresh and --poll take a positive number of seconds")
    options = DashboardOptions(
        sources=tuple(sources),
        read_only=args.read_only,
        poll=args.poll,
        refresh=args.refresh,
        resume_template=args.resume_template,
        simulate_gpus=args.simulate_gpus,
    )
    return run_dashboard(options)
