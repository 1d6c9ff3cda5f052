"""What every source of experiment records offers the board, the CLI and the actions.

A source holds experiment records somewhere (a state directory, later a database or
a hub) and can say what changed. It never draws anything and imports no Textual: the
dashboard turns its deltas into screen updates through the board, the CLI prints its
entries. Reading is always allowed; which actions a record allows is the source's
call (none for a read-only source).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from state.record import Entry
from state.verdict import LivenessProbe, StaleVerdict

if TYPE_CHECKING:
    from state.devices import DeviceSnapshot

_EMPTY: Mapping = MappingProxyType({})

#: The actions a record may allow (names as the runtime/ actions and the key bindings use them).
RESUME = "resume"
MARK_STALE = "mark_stale"
STOP = "stop"


@dataclass(frozen=True, slots=True)
class Delta:
    """What changed in one source since its last delta (keys are the source's own keys)."""

    upserts: Mapping[str, Entry] = field(default_factory=lambda: _EMPTY)
    removed: tuple[str, ...] = ()
    verdicts: Mapping[str, StaleVerdict] = field(default_factory=lambda: _EMPTY)
    devices: tuple[DeviceSnapshot, ...] | None = None
    """All the source's device snapshots, when any changed (None: unchanged)."""
    device_errors: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.upserts or self.removed or self.verdicts or self.devices is not None)


@runtime_checkable
class Source(Protocol):
    """Anything that holds experiment records and can tell what changed.

    How changes reach the dashboard is up to the kind: a state directory is
    watched (runtime/watcher.py) and turns the watcher's hints into deltas; a
    source may instead offer ``follow(stop: threading.Event) -> Iterator[Delta]``
    (blocking, run in a worker thread until ``stop`` is set), or be reconciled every
    ``poll_seconds`` (an attribute; unset means the rare safety-net rescan only).
    """

    @property
    def name(self) -> str:
        """A short label for the ``source`` column and ``list --json``."""
        ...

    @property
    def location(self) -> str:
        """Where it reads from, in full (a path or a URL)."""
        ...

    @property
    def read_only(self) -> bool: ...

    def initial_batches(self) -> Iterator[Delta]:
        """The first full scan, in batches so the first rows show before the last one is read."""
        ...

    def reconcile(self) -> Delta:
        """A full rescan against what was seen: the safety net for lost hints."""
        ...

    def hint(self, paths: set[str]) -> Delta:
        """Change hints (paths a watcher saw change) turned into a delta."""
        ...

    def entries(self) -> Mapping[str, Entry]:
        """Every entry as last scanned (for the CLI; the dashboard uses the board)."""
        ...

    def judge(self, entries: Iterable[Entry], probe: LivenessProbe, now: datetime) -> dict[str, StaleVerdict]:
        """Owner verdicts for the running experiments among ``entries`` (may probe: call off the UI)."""
        ...

    def allowed_actions(self, entry: Entry) -> frozenset[str]:
        """Which actions the record allows from this source (none when read-only or broken)."""
        ...


__all__ = ["Delta", "MARK_STALE", "RESUME", "STOP", "Source"]
