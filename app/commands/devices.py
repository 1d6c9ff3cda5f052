"""``expwatch devices WORKCELL.json``: set a workcell's machines up, show their status, stop them."""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
from pathlib import Path

from state.devices import DeviceSnapshot, DeviceStatus

NAME = "devices"
HELP = "check a workcell file: set its lab devices up, print their status, and stop them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workcell", type=Path, help="workcell JSON file (see runtime/workcells/demo.json)")
    parser.add_argument("--json", action="store_true", help="print the device snapshot as JSON")
    parser.add_argument("--log", action="store_true", help="also print what the devices printed")


def render_table(snapshot: DeviceSnapshot) -> str:
    rows = [("device", "type", "backend", "status", "details")]
    for d in snapshot.devices:
        details = ", ".join(f"{k}={v}" for k, v in d.details.items() if k != "last_command")
        if d.error:
            details = f"{details}; error: {d.error}" if details else f"error: {d.error}"
        rows.append((d.name, d.type, d.backend, d.status.value.replace("_", " "), details))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [f"workcell {snapshot.workcell}"]
    for row in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    return "\n".join(line.rstrip() for line in lines)


def run(args: argparse.Namespace) -> int:
    from app.cli import CommandError
    from runtime.exit_codes import EXIT_ERROR, EXIT_NOT_FOUND
    from runtime.devices.session import open_workcell
    from runtime.devices.workcell import WorkcellError, load_workcell

    if not args.workcell.is_file():
        raise CommandError(f"no workcell file at {args.workcell}", EXIT_NOT_FOUND)
    try:
        workcell = load_workcell(args.workcell)
    except WorkcellError as exc:
        raise CommandError(str(exc)) from None
    device_log = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="expwatch-devices-") as scratch:
        # A check is not a run: its snapshot goes to a scratch directory, not a state directory.
        try:
            session = open_workcell(
                workcell, publish_dir=Path(scratch) / "devices", log=device_log, require_all=False
            )
        except WorkcellError as exc:
            raise CommandError(str(exc)) from None
        with session:
            ready = session.snapshot()
        stopped = session.snapshot()
    if args.json:
        out = {
            "workcell": workcell.name,
            "ready": json.loads(ready.to_json()),
            "stopped": json.loads(stopped.to_json()),
        }
        if args.log:
            out["log"] = device_log.getvalue().splitlines()
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render_table(ready))
        stop_errors = [d for d in stopped.devices if d.status is DeviceStatus.ERROR]
        for d in stop_errors:
            print(f"  {d.name}: {d.error}")
        if not stop_errors:
            print("  all devices stopped")
        if args.log:
            print()
            print(device_log.getvalue().rstrip())
    failed = any(d.status is DeviceStatus.ERROR for d in (*ready.devices, *stopped.devices))
    return EXIT_ERROR if failed else 0
