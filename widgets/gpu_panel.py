"""GPUs: utilisation, memory, power, temperature with sparklines, and whose processes run there.

With a hub among the sources the panel shows the fleet: this host's GPUs, then
each host's as its agent published them, under the host's name (a silent host
says for how long).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text

from state.durations import duration
from widgets import formatting as fmt
from widgets.text_panel import Line, TextPanel, joined

if TYPE_CHECKING:
    from state.telemetry import GpuAttribution, GpuProcessSample, GpuSample, GpuSnapshot, HostGpus


#: A GPU line without its name and sparkline; what the panel takes around its lines (border,
#: padding, and the margin ``show`` keeps); the sparkline and the name at most.
FIXED_CELLS = 34
FRAME_CELLS = 8
WIDE_SPARK = 10
MAX_NAME = 20
#: The most samples of a GPU's history the panel draws (its widest sparkline).
SPARK_SAMPLES = WIDE_SPARK


class GpuPanel(TextPanel):

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("GPUs: waiting for the first sample…", id=id)
        self.border_title = "GPUs"
        self.wanted_width = FIXED_CELLS + WIDE_SPARK + FRAME_CELLS
        """The width its lines need with the widest sparkline and the whole GPU names."""
        self._last: tuple[GpuSnapshot | None, Mapping | None, Mapping | None, Sequence[HostGpus]] | None = None

    def on_resize(self) -> None:
        """Its lines are fitted to its width: fit them again to the new one."""
        super().on_resize()
        if self._last is not None:
            self.show(*self._last)

    def show(
        self,
        snapshot: GpuSnapshot | None,
        history: Mapping[int, tuple[float | None, ...]] | None = None,
        attributions: Mapping[int, GpuAttribution] | None = None,
        fleet: Sequence[HostGpus] = (),
    ) -> None:
        self._last = (snapshot, history, attributions, fleet)
        if snapshot is not None and snapshot.gpus:
            names = max(len(g.name) for g in snapshot.gpus)
            self.wanted_width = FIXED_CELLS + WIDE_SPARK + min(MAX_NAME, names) + 1 + FRAME_CELLS
        colours, width = fmt.theme_colours(self.app.theme_variables), max(20, self.size.width - 4)
        if fleet:
            self.show_lines(fleet_lines(snapshot, history or {}, attributions or {}, fleet, colours, width))
            title = f"GPUs: {len(fleet) + (snapshot is not None)} hosts"
        else:
            self.show_lines(gpu_lines(snapshot, history or {}, attributions or {}, colours, width))
            title = "GPUs (simulated)" if snapshot is not None and snapshot.simulated else "GPUs"
        if title != self.border_title:  # setting it, even to the same text, repaints the panel
            self.border_title = title


def render_gpus(*args: object) -> Text:
    """One host's lines as one text (``gpu_lines``' arguments)."""
    return joined(gpu_lines(*args))  # type: ignore[arg-type]


def render_fleet(*args: object) -> Text:
    """The fleet's lines as one text (``fleet_lines``' arguments)."""
    return joined(fleet_lines(*args))  # type: ignore[arg-type]


def gpu_lines(
    snapshot: GpuSnapshot | None,
    history: Mapping[int, tuple[float | None, ...]],
    attributions: Mapping[int, GpuAttribution],
    colours: Mapping[str, str],
    width: int,
) -> list[Line]:
    """One host's lines: each GPU's, then its processes'."""
    if snapshot is None:
        return [lambda: Text("waiting for the first sample…", style=colours.get("$text-muted", ""))]
    if not snapshot.ok:
        # The longest of these that fits: a message cut mid-word says nothing.
        detail = f" ({snapshot.detail})" if snapshot.detail else ""
        said = (
            f"GPUs unavailable: {snapshot.status}{detail}. Everything else works.",
            f"GPUs unavailable: {snapshot.status}. Everything else works.",
            f"GPUs unavailable: {snapshot.status}",
            "GPUs unavailable",
        )
        fits = next((t for t in said if len(t) <= width), said[-1])
        return [lambda: Text(fits, style=colours.get("$warning", ""))]
    if not snapshot.gpus:
        return [lambda: Text("no GPUs found", style=colours.get("$text-muted", ""))]
    # Fixed part: index, util, memory, power, temperature (FIXED_CELLS); then the sparkline; the name gets the rest.
    spark_width = WIDE_SPARK if width >= FIXED_CELLS + WIDE_SPARK + 12 else 5
    name_width = min(MAX_NAME, width - FIXED_CELLS - spark_width - 1)
    name_width = name_width if name_width >= 6 else 0  # a name cut to a few letters says nothing
    out: list[Line] = []
    for gpu in snapshot.gpus:
        out.append(partial(_gpu_line, gpu, history.get(gpu.index, ()), colours, spark_width, name_width))
        if not gpu.error:
            out += [partial(_process_line, proc, attributions.get(proc.pid), colours) for proc in gpu.processes]
    return out


def _gpu_line(gpu: GpuSample, history: tuple[float | None, ...], colours: Mapping[str, str], spark_width: int, name_width: int) -> Text:
    out = Text(no_wrap=True, overflow="ellipsis")
    out.append(f"{gpu.index} ", style="bold")
    if gpu.error:
        out.append(f"{gpu.name[:18]} {gpu.error}", style=colours.get("$error", ""))
        return out
    if name_width:
        out.append(f"{gpu.name[:name_width]:{name_width}} ")
    out.append(fmt.sparkline(history, spark_width), style=colours.get("$accent", ""))
    out.append(f" {fmt.number(gpu.utilization_gpu, '%'):>4}")
    out.append(f" {fmt.nbytes(gpu.memory_used_bytes) + '/' + fmt.nbytes(gpu.memory_total_bytes):>10}")
    power = fmt.number(gpu.power_watts, "W") + "/" + fmt.number(gpu.power_limit_watts, "W")
    out.append(f" {power:>9}")
    temp = gpu.temperature_c
    hot = temp is not None and temp >= 85
    out.append(f" {fmt.number(temp, '°C'):>5}", style=colours.get("$error", "") if hot else "")
    return out


def _process_line(proc: GpuProcessSample, who: GpuAttribution | None, colours: Mapping[str, str]) -> Text:
    label = "unattributed"
    if who is not None:
        label = who.experiment_id
        if who.process_index is not None:
            label += f"[{who.process_index}]"
        if who.current_step:
            label += f" {who.current_step}"
        if not who.confident:
            label += " ?"
    return Text(f"   pid {proc.pid:<7} {fmt.nbytes(proc.used_memory_bytes):>6}  {label}",
                style=colours.get("$text-muted", "") if who is None else "", no_wrap=True, overflow="ellipsis")


def fleet_lines(
    local: GpuSnapshot | None,
    history: Mapping[int, tuple[float | None, ...]],
    attributions: Mapping[int, GpuAttribution],
    fleet: Sequence[HostGpus],
    colours: Mapping[str, str],
    width: int,
) -> list[Line]:
    """This host's GPUs (when sampled), then each fleet host's under a ``── host`` line."""
    out: list[Line] = []
    if local is not None:
        out.append(partial(fmt.host_header, "this host"))
        out += gpu_lines(local, history, attributions, colours, width)
    for host in fleet:
        out.append(partial(fmt.host_header, host.host + (" (simulated)" if host.snapshot is not None and host.snapshot.simulated else "")))
        if host.silent_s is not None:
            said = f"silent for {duration(host.silent_s)} (agent lease expired)"
            out.append(partial(Text, said, style=colours.get("$warning", "")))
        elif host.snapshot is None:
            out.append(partial(Text, "no GPU snapshot published", style=colours.get("$text-muted", "")))
        else:
            out += gpu_lines(host.snapshot, host.history, host.attributions, colours, width)
    return out
