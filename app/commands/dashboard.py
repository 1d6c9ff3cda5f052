"""``expwatch [STATE_DIR]``: the dashboard."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from app.commands._common import count, positive_seconds
from state.alerts import ALERT_KINDS
from state.board import SORTS

NAME = "dashboard"
#: How long the dashboard waits for its first rows before it loads Textual (which takes longer):
#: past it, they are read on while Textual loads, and drawn when in.
FIRST_SCREEN_WAIT_S = 0.15
HELP = "open the dashboard on a state directory (the default command)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directories", nargs="*", metavar="SOURCE", help="state directories (or other sources), shown in one table (default: $EXPWATCH_STATE_DIR or ./.state)"
    )
    parser.add_argument("--read-only", action="store_true", help="observer mode: no key or action can change anything")
    parser.add_argument(
        "--poll",
        nargs="?",
        type=positive_seconds,
        const=2.0,
        default=None,
        metavar="SECONDS",
        help="scan the directory every SECONDS (default 2) instead of file-system events (network filesystems)",
    )
    parser.add_argument("--refresh", type=positive_seconds, default=1.0, metavar="SECONDS", help="GPU and process sampling interval")
    parser.add_argument("--resume-template", default=os.environ.get("EXPWATCH_RESUME_TEMPLATE"), help="command to resume llenergymeasure experiments")
    parser.add_argument("--simulate-gpus", type=count, default=None, metavar="N", help="show N simulated GPUs")
    prefs = parser.add_argument_group(
        "preferences", "saved in the config file (`--print-config` shows where); a flag wins for this session only"
    )
    prefs.add_argument("--theme", default=None, metavar="NAME", help="a Textual theme (ctrl+p lists them)")
    prefs.add_argument("--sort", choices=SORTS, default=None, help="the first sort")
    prefs.add_argument("--hide-columns", type=_names, default=None, metavar="COL,...", help="columns not to show (e.g. energy,eta)")
    prefs.add_argument(
        "--alerts", type=_alert_kinds, default=None, metavar="KINDS",
        help=f"which transitions alert: some of {','.join(ALERT_KINDS)}, or none (default: all)",
    )
    prefs.add_argument("--no-bell", action="store_true", default=None, help="alerts without the terminal bell")
    prefs.add_argument(
        "--notify-cmd", default=None, metavar="CMD",
        help="a shell command run for each alert with the event as JSON on stdin (notify-send, a webhook)",
    )
    prefs.add_argument("--print-config", action="store_true", help="print the config file's path and values, then exit")


def _names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


def _alert_kinds(text: str) -> tuple[str, ...]:
    if text.strip().lower() == "none":
        return ()
    kinds = _names(text.lower())
    unknown = [k for k in kinds if k not in ALERT_KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown alert kind {', '.join(unknown)} (known: {', '.join(ALERT_KINDS)}, none)")
    return kinds


def _with_flags(prefs, args: argparse.Namespace):
    """The file's preferences with the flags given on top."""
    from dataclasses import replace

    flags = {
        "theme": args.theme,
        "sort": args.sort,
        "hidden_columns": args.hide_columns,
        "alerts": args.alerts,
        "bell": False if args.no_bell else None,
        "notify_cmd": args.notify_cmd,
    }
    return replace(prefs, **{k: v for k, v in flags.items() if v is not None})


def print_config() -> int:
    import json

    from app.cli import CommandError
    from app.preferences import Preferences, PreferencesError, config_path, load_preferences

    path = config_path()
    try:
        prefs = load_preferences(path)
    except PreferencesError as exc:
        raise CommandError(f"cannot use the config file: {exc}") from None
    print(f"config file: {path}" + ("" if path.exists() else " (not there yet: these are the defaults)"))
    print(json.dumps(prefs.to_json_dict(), indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    from app.cli import CommandError, resolve_sources
    from app.preferences import Preferences, PreferencesError, config_path, load_preferences
    from runtime.exit_codes import EXIT_NOT_FOUND
    from state.sources import DirectorySource, SourceError, open_sources

    if args.print_config:
        return print_config()
    path = config_path()
    try:
        saved = load_preferences(path)
    except PreferencesError as exc:
        # Shown, used as the defaults, and never written over: the user's file is theirs to fix.
        print(f"expwatch: ignoring the config file: {exc}", file=sys.stderr)
        saved, path = None, None
    sources = resolve_sources(args, args.directories)
    try:
        opened = open_sources(sources, read_only=args.read_only)  # each must name something readable, before the screen opens
    except SourceError as exc:
        raise CommandError(str(exc), EXIT_NOT_FOUND) from None
    from datetime import datetime

    from runtime.liveness import LocalProbe

    reading = [s for s in opened if isinstance(s, DirectorySource)]
    for source in reading:
        source.read_first_screen(LocalProbe(), lambda: datetime.now().astimezone())
    # Read alone, a screenful takes milliseconds; read while Textual loads, the listing's GIL hand-offs
    # (one per directory entry) cost both more than that. A slow file system is waited for no longer.
    deadline = time.monotonic() + FIRST_SCREEN_WAIT_S
    for source in reading:
        source.wait_first_screen(max(0.0, deadline - time.monotonic()))
    from app import app as dashboard  # Textual loads (a first screen not in by now is read on meanwhile)

    options = dashboard.DashboardOptions(
        sources=tuple(sources),
        opened=tuple(opened),
        read_only=args.read_only,
        poll=args.poll,
        refresh=args.refresh,
        resume_template=args.resume_template,
        simulate_gpus=args.simulate_gpus,
        preferences=_with_flags(saved or Preferences(), args),
        preferences_path=path,
        saved_preferences=saved,
    )
    return dashboard.run_dashboard(options)
