"""The board: the one in-memory picture the dashboard draws from.

Sources post deltas; ``Board.apply`` folds each into the rows (entry + owner
verdict + source), keeps the per-category counts, and says exactly what the
screen must redraw: rows whose cells changed, rows added or removed, whether the
order may have moved. The filter and the sort live here too, so the screen asks
for the order instead of computing it. No Textual, no I/O: tests post deltas and
read the answer.

Keys are the sources' own keys while there is one source, ``source:key`` with
several, so keys stay unique across sources.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

from state.alerts import Alert, transition_alert
from state.progress import elapsed_seconds, eta_seconds, progress_fraction
from state.record import BrokenRecord, Entry, ExperimentRecord
from state.sources.base import Delta
from state.verdict import StaleVerdict, is_stale

if TYPE_CHECKING:
    from state.devices import DeviceSnapshot  # pydantic: loaded once a device file exists

#: What ``s`` cycles through.
SORTS = ("status", "updated", "id", "progress")
#: Every order the board can compute (a click on a column's header asks for its own).
ALL_SORTS = (*SORTS, "name", "runs", "energy", "started", "elapsed", "eta", "owner", "source")
#: Orders that change with the time alone: computed with the time of each ``order()``.
_TIMED = frozenset({"elapsed", "eta"})
_STATUS_ORDER = {"running": 0, "broken": 1, "interrupted": 2, "failed": 3, "initialised": 4, "completed": 5, "aggregated": 6}
_EMPTY: Mapping = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class BoardRow:
    """One row: what the source read, the owner verdict where one was judged, and where it came from."""

    entry: Entry
    verdict: StaleVerdict | None = None
    source: str = ""

    @property
    def category(self) -> str:
        """What the header counts it as: broken, stale, or its status."""
        entry = self.entry
        if isinstance(entry, BrokenRecord):
            return "broken"
        return "stale" if is_stale(entry.status, self.verdict) else entry.status


@dataclass(frozen=True, slots=True)
class Redraw:
    """What one ``apply`` changed, for the screen to redraw and nothing more."""

    changed: Mapping[str, BoardRow] = field(default_factory=lambda: _EMPTY)
    """Rows whose cells changed, the added ones included."""
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    moved: bool = False
    """An existing row's sort position or filter membership may have changed."""
    records: bool = False
    """Records changed (not only verdicts): whatever reads the records again must."""
    devices: bool = False
    alerts: tuple[Alert, ...] = ()
    """Transitions a user wants to hear about (failed, stale, finished) among the changed rows."""

    @property
    def membership(self) -> bool:
        return bool(self.added or self.removed)

    @property
    def counts(self) -> bool:
        return bool(self.changed or self.removed)

    def __bool__(self) -> bool:
        return bool(self.changed or self.removed or self.moved or self.devices)


def _missing_last(value: object, tie: str) -> tuple:
    return (1, 0, tie) if value is None else (0, value, tie)


def row_sort_key(mode: str, now: datetime | None = None) -> Callable[[BoardRow], tuple]:
    """The key of one sort mode: ``(group, value, id)``, group 1 for rows with nothing to sort
    by (they stay last either way round; see ``Board.order``). ``now`` is for the modes that
    depend on the time (elapsed, eta)."""
    if mode not in ALL_SORTS:
        raise ValueError(f"unknown sort {mode!r} (known: {', '.join(ALL_SORTS)})")
    when = now or datetime.now().astimezone()

    def key(row: BoardRow) -> tuple:
        entry = row.entry
        if isinstance(entry, BrokenRecord):
            # Broken rows sort with the status order (by its rank), else after the readable rows.
            if mode == "status":
                return (0, _STATUS_ORDER["broken"], entry.key)
            return (0, entry.key, entry.key) if mode == "id" else (1, 0, entry.key)
        ident = entry.experiment_id
        if mode == "status":
            return (0, -1 if is_stale(entry.status, row.verdict) else _STATUS_ORDER.get(entry.status, 9), ident)
        if mode == "id":
            return (0, ident, entry.key)
        if mode == "updated":
            return _missing_last(-entry.last_updated.timestamp() if entry.last_updated else None, ident)
        if mode == "progress":
            return _missing_last(progress_fraction(entry), ident)
        if mode == "name":
            return _missing_last(entry.label.lower() or None, ident)
        if mode == "runs":
            return _missing_last(entry.runs_done if entry.runs_total else None, ident)
        if mode == "energy":
            return _missing_last(entry.energy_joules, ident)
        if mode == "started":
            return _missing_last(entry.started_at.timestamp() if entry.started_at else None, ident)
        if mode == "elapsed":
            return _missing_last(elapsed_seconds(entry, when, row.verdict), ident)
        if mode == "eta":
            return _missing_last(None if is_stale(entry.status, row.verdict) else eta_seconds(entry, when), ident)
        if mode == "owner":
            return _missing_last(row.verdict.liveness.value if row.verdict is not None else None, ident)
        return (0, row.source, ident)  # source

    return key


def row_matches(row: BoardRow, needle: str) -> bool:
    """Whether ``needle`` (lower case) is in the row's id, key, name, status or source."""
    if not needle:
        return True
    entry = row.entry
    if isinstance(entry, BrokenRecord):
        hay = f"{entry.key} broken {entry.reason} {row.source}"
    else:
        hay = f"{entry.experiment_id} {entry.key} {entry.label} {row.category} {row.source}"
    return needle in hay.lower()


def _probeable(entry: ExperimentRecord) -> bool:
    return bool(entry.owner or entry.workers or entry.legacy_pid is not None)


class Board:
    """Rows by key, their counts, the filter and the order, fed by ``apply``."""

    def __init__(self, sources: Sequence[str] = ("",)) -> None:
        if len(set(sources)) != len(sources):
            raise ValueError(f"source names must be unique: {list(sources)}")
        self.sources = tuple(sources)
        self.rows: dict[str, BoardRow] = {}
        self.counts: Counter[str] = Counter()
        self.filter_text = ""
        self.sort_mode = SORTS[0]
        self.sort_reverse = False
        self._sort = row_sort_key(self.sort_mode)
        #: Each row's sort key, and the row it was computed from: kept while the row is the same object
        #: (rows are replaced, never changed).
        self._sort_keys: dict[str, tuple] = {}
        self._sorted_rows: dict[str, BoardRow] = {}
        #: Every key in the last order: a few moved rows leave it nearly sorted, which the next sort is quick on.
        self._last_order: list[str] = []
        #: Keys of running experiments with something to probe: the verdict tick's work list.
        self.to_judge: set[str] = set()
        self.devices: dict[str, tuple[DeviceSnapshot, ...]] = {}
        self.device_errors: dict[str, tuple[str, ...]] = {}
        self._records: tuple[ExperimentRecord, ...] | None = ()

    @property
    def several_sources(self) -> bool:
        return len(self.sources) > 1

    def key(self, source: str, key: str) -> str:
        return f"{source}:{key}" if len(self.sources) > 1 else key

    def get(self, key: str) -> BoardRow | None:
        return self.rows.get(key)

    def __len__(self) -> int:
        return len(self.rows)

    # -- changes ------------------------------------------------------------------------
    def apply(self, source: str, delta: Delta) -> Redraw:
        if source not in self.sources:
            raise KeyError(f"unknown source {source!r}")
        rows, counts, to_judge = self.rows, self.counts, self.to_judge
        removed: list[str] = []
        for k in delta.removed:
            bk = self.key(source, k)
            row = rows.pop(bk, None)
            to_judge.discard(bk)
            if row is not None:
                counts[row.category] -= 1
                removed.append(bk)
        changed: dict[str, BoardRow] = {}
        added: list[str] = []
        alerts: list[Alert] = []
        moved = records = False
        upserts, verdicts = delta.upserts, delta.verdicts
        for k in upserts.keys() | verdicts.keys() if verdicts else upserts:
            bk = self.key(source, k)
            old = rows.get(bk)
            entry = upserts.get(k) or (old.entry if old is not None else None)
            if entry is None:
                continue  # a verdict for a row that has gone
            verdict = verdicts.get(k, old.verdict if old is not None else None)
            if isinstance(entry, ExperimentRecord) and entry.status == "running":
                if verdict is not None and not _probeable(entry):
                    to_judge.discard(bk)  # nothing recorded to probe: the verdict cannot change
                else:
                    to_judge.add(bk)
            else:
                verdict = None
                to_judge.discard(bk)
            new = BoardRow(entry, verdict, source)
            if old == new:
                continue
            rows[bk] = new
            if old is None:
                added.append(bk)
            else:
                counts[old.category] -= 1
                if not moved and self._position_changed(old, new):
                    moved = True
                alert = transition_alert(bk, old, new)
                if alert is not None:
                    alerts.append(alert)
            counts[new.category] += 1
            changed[bk] = new
            if k in upserts:
                records = True
        if records or removed:
            self._records = None
        devices = delta.devices is not None
        if devices:
            self.devices[source] = delta.devices or ()
            self.device_errors[source] = delta.device_errors
        return Redraw(changed, tuple(added), tuple(removed), moved, records or bool(removed), devices, tuple(alerts))

    def _position_changed(self, old: BoardRow, new: BoardRow) -> bool:
        needle = self.filter_text.lower()
        return self._sort(old) != self._sort(new) or row_matches(old, needle) != row_matches(new, needle)

    # -- filter and order -----------------------------------------------------------------
    def set_filter(self, text: str) -> bool:
        """Change the filter; True when it changed (the order must be asked for again)."""
        text = text.strip()
        if text == self.filter_text:
            return False
        self.filter_text = text
        return True

    def set_sort(self, mode: str, *, reverse: bool = False) -> bool:
        """Order by ``mode`` (``reverse`` turns it round); True when the order must be asked for again."""
        if (mode, reverse) == (self.sort_mode, self.sort_reverse):
            return False
        self._sort = row_sort_key(mode)
        self._sorted_rows.clear()
        self.sort_mode = mode
        self.sort_reverse = reverse
        return True

    def cycle_sort(self) -> str:
        at = SORTS.index(self.sort_mode) if self.sort_mode in SORTS else -1
        self.set_sort(SORTS[(at + 1) % len(SORTS)])
        return self.sort_mode

    def matches(self, row: BoardRow) -> bool:
        return row_matches(row, self.filter_text.lower())

    def order(self, now: datetime | None = None) -> list[str]:
        """The keys shown, filtered and sorted; rows with nothing to sort by stay last when reversed.

        With 10,000 rows a sort from scratch is most of a reorder's cost (every row's key
        computed, n log n comparisons); a change moves a few rows, so each row's key is kept
        while its row is unchanged and the sort starts from the last order.
        """
        keys, computed_from = self._sort_keys, self._sorted_rows
        if self.sort_mode in _TIMED:
            self._sort = row_sort_key(self.sort_mode, now)
            computed_from.clear()
        rows, by = self.rows, self._sort
        for k in [k for k, row in rows.items() if computed_from.get(k) is not row]:
            computed_from[k] = row = rows[k]
            keys[k] = by(row)
        if len(keys) > len(rows):
            for gone in [k for k in keys if k not in rows]:
                del keys[gone], computed_from[gone]
        ordered = [k for k in self._last_order if k in rows]
        if len(ordered) != len(rows):
            known = set(ordered)
            ordered += [k for k in rows if k not in known]
        ordered.sort(key=keys.__getitem__, reverse=self.sort_reverse)
        if self.sort_reverse:
            ordered.sort(key=lambda k: keys[k][0])  # stable: the groups' inner order stays reversed
        self._last_order = ordered
        needle = self.filter_text.lower()
        return [k for k in ordered if row_matches(rows[k], needle)] if needle else list(ordered)

    # -- reads for the rest of the dashboard -------------------------------------------------
    @property
    def visible_counts(self) -> Counter[str]:
        return +self.counts

    def records(self) -> tuple[ExperimentRecord, ...]:
        """Every readable record, as one immutable tuple (rebuilt only after records changed)."""
        if self._records is None:
            self._records = tuple(r.entry for r in self.rows.values() if isinstance(r.entry, ExperimentRecord))
        return self._records

    def records_of(self, source: str) -> tuple[ExperimentRecord, ...]:
        return tuple(r.entry for r in self.rows.values() if r.source == source and isinstance(r.entry, ExperimentRecord))

    def all_devices(self) -> tuple[tuple[DeviceSnapshot, ...], tuple[str, ...]]:
        snapshots = tuple(s for source in self.sources for s in self.devices.get(source, ()))
        errors = tuple(e for source in self.sources for e in self.device_errors.get(source, ()))
        return snapshots, errors

    def entries_of(self, source: str, keys: Iterable[str]) -> list[Entry]:
        """The entries of ``source`` among board ``keys`` (for judging them at the source)."""
        out = []
        for bk in keys:
            row = self.rows.get(bk)
            if row is not None and row.source == source:
                out.append(row.entry)
        return out


__all__ = ["ALL_SORTS", "SORTS", "Board", "BoardRow", "Redraw", "row_matches", "row_sort_key"]
