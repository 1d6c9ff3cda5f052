"""The messages workers post to the App: plain dataclasses, one module.

Every message carries immutable data made off the UI thread; handlers only fold
it into the board or hand it to a screen. None is ``can_replace``: a delta that
replaced another would lose rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

from state.sources import Delta

if TYPE_CHECKING:
    from state.telemetry import GpuAttribution, GpuSnapshot, HostGpus


@dataclass
class SourceChanged(Message):
    """A delta from one source (a scan batch, watch hints, a reconcile, or new verdicts)."""

    source: str
    delta: Delta
    first: bool = False
    """The first batch of this source's first scan."""


@dataclass
class SourceScanned(Message):
    """A source's first scan is complete (its every file has been read once)."""

    source: str


@dataclass
class GpuSampled(Message):
    snapshot: GpuSnapshot | None
    """This host's GPUs (None: not sampled yet, while the fleet's came)."""
    history: dict[int, tuple[float | None, ...]]
    attributions: dict[int, GpuAttribution]
    fleet: tuple[HostGpus, ...] = ()
    """The GPUs of every hub's hosts (empty without a hub)."""


__all__ = ["GpuSampled", "SourceChanged", "SourceScanned"]
