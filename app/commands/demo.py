"""``expwatch demo``: the dashboard on a live demo (real runners, simulated GPUs and devices)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.commands._ending import SignalEnding

NAME = "demo"
HELP = "start real runner processes on demo studies and open the dashboard on them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", nargs="?", type=Path, help="where to put the demo (default: a new temporary folder)")
    parser.add_argument("--headless", action="store_true", help="no dashboard: run the demo, print a summary, stop")
    parser.add_argument("--seconds", type=float, default=15.0, help="with --headless: how long to let the demo run")
    parser.add_argument("--read-only", action="store_true", help="open the dashboard in observer mode")
    parser.add_argument("--screenshot", type=Path, metavar="FILE.svg", help="let the demo run --seconds, save the dashboard as SVG, stop")
    parser.add_argument(
        "--fleet", action="store_true",
        help="three simulated hosts, each with its agent, publishing to a private redis-server; opens the fleet view (needs redis-server)",
    )


def _summary(state_dir: Path) -> list[str]:
    from runtime.actions import verdict_for
    from runtime.demo import describe_entry
    from state.record import BrokenRecord
    from state.store import StateStore

    store = StateStore(state_dir, read_only=True)
    store.scan()
    return [
        describe_entry(e, dead=not isinstance(e, BrokenRecord) and e.status == "running" and verdict_for(e).is_dead)
        for _, e in sorted(store.entries.items())
    ]


def present(
    args: argparse.Namespace,
    ending: SignalEnding,
    events: list[str],
    heading: str,
    summary: Callable[[], list[str]],
    *,
    shoot: Callable[[Path], None],
    open_dashboard: Callable[[], None],
) -> None:
    """What a demo shows once started: an SVG (--screenshot), a summary (--headless), or the dashboard.

    A signal that ends the session cuts the wait short and skips what was to follow it."""
    if ending.ended:
        return
    if args.screenshot:
        if ending.wait(args.seconds):
            return
        shoot(args.screenshot)
        print(f"saved {args.screenshot}")
    elif args.headless:
        if ending.wait(args.seconds):
            return
        for event in events:
            print(f"  {event}")
        print(heading)
        for line in summary():
            print(line)
    else:
        open_dashboard()


def save_dashboard_svg(app: Any, path: Path, ready: Callable[[], bool], size: tuple[int, int] = (120, 34)) -> None:
    """The dashboard saves its own SVG (Textual's screenshot) once ``ready`` says the demo's picture is there."""
    import asyncio

    async def shoot() -> None:
        async with app.run_test(size=size) as pilot:
            for _ in range(400):
                if ready():
                    break
                await pilot.pause(0.05)
            await pilot.pause(0.3)
            path.parent.mkdir(parents=True, exist_ok=True)
            app.save_screenshot(filename=path.name, path=str(path.parent))

    asyncio.run(shoot())


def _screenshot(fleet: Any, path: Path) -> None:
    from app.app import DashboardOptions, ExpwatchApp
    from runtime.demo import DEMO_GPUS, DemoGpuSource

    options = DashboardOptions(sources=(fleet.state_dir,), simulate_gpus=DEMO_GPUS, watch=False)
    app = ExpwatchApp(options, gpu_source=DemoGpuSource(fleet.state_dir))
    save_dashboard_svg(app, path, lambda: app.scan_complete and app._gpu_sampler is not None and app._gpu_sampler.ticks >= 3)


def run(args: argparse.Namespace) -> int:
    if args.fleet:
        from app.commands._demo_fleet import run_fleet

        return run_fleet(args)
    from app.app import DashboardOptions, ExpwatchApp
    from runtime.demo import DEMO_GPUS, DemoFleet, DemoGpuSource

    root = args.directory or Path(tempfile.mkdtemp(prefix="expwatch-demo-"))
    fleet = DemoFleet(root)
    fleet.prepare()
    fleet.plan()
    print(f"expwatch demo in {fleet.root} (state directory {fleet.state_dir})", flush=True)
    from app.commands._ending import SignalEnding

    with SignalEnding() as ending:
        try:
            fleet.start()  # a signal meanwhile is noted: every process started is recorded for the cleanup
            present(
                args, ending, fleet.events, "experiments:", lambda: _summary(fleet.state_dir),
                shoot=lambda path: _screenshot(fleet, path),
                open_dashboard=lambda: ending.run(ExpwatchApp(
                    DashboardOptions(sources=(fleet.state_dir,), read_only=args.read_only, simulate_gpus=DEMO_GPUS),
                    gpu_source=DemoGpuSource(fleet.state_dir),
                )),
            )
        finally:
            with ending.shielded():
                stopped = fleet.stop()
            with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
                print(f"demo stopped ({len(stopped)} process group(s) ended); its files stay in {fleet.root}",
                      file=sys.stderr, flush=True)
    return ending.exit_code
