"""``expwatch gpus``: one GPU snapshot on the command line, like ``nvitop --once``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from app.commands._common import count
from state.telemetry import GpuAttribution, GpuSnapshot

NAME = "gpus"
HELP = "print one snapshot of the GPUs (NVML, or simulated) and the experiments using them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    parser.add_argument(
        "--simulate", type=count, default=None, metavar="N",
        help="show N simulated GPUs (default: $EXPWATCH_SIMULATE_GPUS, else NVML)",
    )


def _attributions(args: argparse.Namespace, snapshot: GpuSnapshot) -> tuple[dict[int, GpuAttribution], str | None]:
    """GPU processes matched to experiments in the state directory, when there is one."""
    from app.cli import resolve_state_dir
    from runtime.liveness import host_facts
    from runtime.procs import ProcessSampler
    from state.store import StateStore, StoreError
    from state.telemetry import attribute_gpu_processes

    pids = [p.pid for g in snapshot.gpus for p in g.processes]
    state_dir = resolve_state_dir(args)
    if not pids or not state_dir.is_dir():
        return {}, None
    try:
        store = StateStore(state_dir, read_only=True)
        store.scan()
        records = store.records()
    except (StoreError, OSError) as exc:
        return {}, f"experiments not matched: {exc}"
    here = host_facts()
    found = attribute_gpu_processes(
        snapshot, records, start_times=ProcessSampler().start_times(pids), host=here.host, boot_id=here.boot_id
    )
    return found, None


def _num(value: float | None, fmt: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{fmt}}{unit}"


def _gib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**30:.1f}"


WIDTH = 80


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(snapshot: GpuSnapshot, attributions: dict[int, GpuAttribution]) -> str:
    title = "GPUs (simulated)" if snapshot.simulated else "GPUs"
    header = f"{title}: {snapshot.status}"
    if snapshot.driver_version and not snapshot.simulated:
        header += f"  driver {snapshot.driver_version}"
    lines = [header]
    if not snapshot.ok:
        if snapshot.detail and snapshot.detail != snapshot.status:
            lines.append(f"  ({snapshot.detail})")
        return "\n".join(lines)
    if not snapshot.gpus:
        lines.append("  no GPUs found")
        return "\n".join(lines)
    rows = [("GPU", "name", "util", "mem GiB", "power W", "energy kJ", "temp", "fan", "procs")]
    for g in snapshot.gpus:
        if g.error:
            rows.append((str(g.index), g.name or "?", g.error, "", "", "", "", "", ""))
            continue
        mem = f"{_gib(g.memory_used_bytes)}/{_gib(g.memory_total_bytes)}"
        power = f"{_num(g.power_watts, '.0f')}/{_num(g.power_limit_watts, '.0f')}"
        energy = "n/a" if g.energy_mj is None else f"{g.energy_mj / 1e6:,.1f}"
        rows.append((
            str(g.index), g.name, _num(g.utilization_gpu, ".0f", "%"), mem, power, energy,
            _num(g.temperature_c, ".0f", "C"), _num(g.fan_percent, ".0f", "%"), str(len(g.processes)),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    # The name gives way so a row fits an 80-column terminal.
    excess = 2 + sum(widths) + 2 * (len(widths) - 1) - WIDTH
    if excess > 0:
        widths[1] = max(len(rows[0][1]), widths[1] - excess)
    for row in rows:
        cells = [_fit(cell, w) for cell, w in zip(row, widths)]
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(cells, widths)).rstrip())
    procs = [(g.index, p) for g in snapshot.gpus for p in g.processes]
    if procs:
        lines.append("")
        lines.append("  GPU  pid      type      mem GiB  experiment")
        for index, p in procs:
            who = attributions.get(p.pid)
            label = ""
            if who is not None:
                label = who.key + (f" #{who.process_index}" if who.process_index is not None else f" ({who.role})")
                if who.current_step:
                    label += f" [{who.current_step}]"
                if not who.confident:
                    label += " ?"
            lines.append(f"  {index:<4} {p.pid:<8} {p.type:<9} {_gib(p.used_memory_bytes):<8} {label}".rstrip())
    return "\n".join(lines)


def to_json(snapshot: GpuSnapshot, attributions: dict[int, GpuAttribution]) -> dict[str, Any]:
    data = snapshot.to_dict()
    data["attributions"] = {
        str(pid): {
            "experiment_id": a.experiment_id, "key": a.key, "process_index": a.process_index,
            "role": a.role, "current_step": a.current_step, "confident": a.confident,
        }
        for pid, a in sorted(attributions.items())
    }
    return data


def run(args: argparse.Namespace) -> int:
    from app.cli import CommandError
    from runtime.gpu.factory import make_gpu_source

    try:
        source = make_gpu_source(args.simulate)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    try:
        snapshot = source.sample()
    finally:
        source.close()
    attributions, note = _attributions(args, snapshot)
    if args.json:
        json.dump(to_json(snapshot, attributions), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render_table(snapshot, attributions))
    if note:
        print(f"expwatch: {note}", file=sys.stderr)
    return 0
