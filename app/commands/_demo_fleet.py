"""``expwatch demo --fleet``: a private hub, three simulated hosts with their agents, the fleet dashboard.

Not a command of its own (the underscore hides it): ``demo`` hands over to it.
Whatever ends the session (q, Ctrl+C, SIGTERM, a closed terminal's SIGHUP),
everything the demo started is stopped and its temporary directories removed.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from app.cli import CommandError
from app.commands._ending import SignalEnding
from app.commands.demo import present, save_dashboard_svg
from runtime.exit_codes import EXIT_USAGE


def run_fleet(args: argparse.Namespace) -> int:
    from runtime.demo_fleet import FleetDemo, RedisMissing, fleet_summary

    try:
        demo = FleetDemo(args.directory)
    except RedisMissing as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    with SignalEnding() as ending:
        try:
            demo.prepare()
            print(f"expwatch fleet demo in {demo.root}\nhosts {', '.join(h.name for h in demo.hosts)}; hub {demo.url}", flush=True)
            demo.start()  # a signal meanwhile is noted: every process started is recorded for the cleanup
            present(
                args, ending, demo.events, "hosts:", lambda: fleet_summary(demo.url),
                shoot=lambda path: _screenshot(demo, path),
                open_dashboard=lambda: _dashboard(demo, ending, read_only=args.read_only),
            )
        finally:
            with ending.shielded():
                stopped = demo.stop()
            with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
                kept = f"its files stay in {demo.root}" if args.directory else "its temporary folders are removed"
                print(f"fleet demo stopped ({len(stopped)} process(es) ended); {kept}", file=sys.stderr, flush=True)
    return ending.exit_code


def _dashboard(demo: Any, ending: SignalEnding, *, read_only: bool) -> None:
    """The fleet view on the demo's hub (imported only when shown: a signalled demo goes straight to its cleanup)."""
    from app.app import DashboardOptions, ExpwatchApp

    ending.run(ExpwatchApp(DashboardOptions(sources=(demo.url,), read_only=read_only, local_gpus=False)))


def _screenshot(demo: Any, path: Path) -> None:
    """Saved once every host's experiments and GPUs have arrived through the hub."""
    from app.app import DashboardOptions, ExpwatchApp

    hosts = {h.name for h in demo.hosts}
    app = ExpwatchApp(DashboardOptions(sources=(demo.url,), local_gpus=False))

    def ready() -> bool:
        shown = app.latest_gpus.fleet if app.latest_gpus is not None else ()
        return hosts <= {r.entry.host for r in app.board.rows.values()} and hosts <= {g.host for g in shown if g.snapshot is not None}

    save_dashboard_svg(app, path, ready)
