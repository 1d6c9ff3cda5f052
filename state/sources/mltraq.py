"""An MLtraq database as a source: one row per experiment, followed live, never written.

Selected by content: a path to an SQLite file whose ``experiments`` table has
MLtraq's columns, or ``sqlite:///path``. The source polls ``PRAGMA
data_version`` and the file's signature (cheap) and re-reads only when either
moved. ``persist(if_exists="replace")`` removes an experiment for a moment (its
row is deleted and inserted again, its runs table dropped and refilled in
chunks): while an experiment's row is missing, or its table holds other than
the runs its ``meta`` announces, the last good row stays, marked "being
rewritten", for up to ``REWRITE_GRACE_S`` (a new experiment waits as long to
appear); only then is what the database holds shown as it is. Read-only: no action is ever allowed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from state.inspection.extras import Extras
from state.inspection.snapshot import Snapshot
from state.inspection.steps import SourceCheck, StepView
from state.mltraq.database import ExperimentRow, MltraqDatabase, MltraqError, NotMltraq, RunsTable, is_sqlite_file
from state.mltraq.experiment import (
    STATUS_COLUMNS,
    MltraqExperiment,
    expected_runs,
    full_experiment,
    summary_record,
    table_of,
)
from state.record import BrokenRecord, Entry, ExperimentRecord, FileVersion, StateFormat
from state.sources.base import Delta
from state.sources.opening import SourceError
from state.verdict import LivenessProbe, StaleVerdict

#: Seconds between two looks at ``PRAGMA data_version`` while followed.
POLL_SECONDS = 0.2
#: How long a vanished or half-written experiment keeps its last good row.
REWRITE_GRACE_S = 5.0
REWRITING = "being rewritten"
URL_PREFIX = "sqlite:///"


def _modified(version: FileVersion | None) -> datetime:
    """When the database was last written (the row's "updated"): MLtraq records no time of its own."""
    if version is None:
        return datetime.now().astimezone()
    return datetime.fromtimestamp(version.mtime_ns / 1e9).astimezone()


@dataclass(frozen=True, slots=True)
class _Read:
    """One experiment as read now: its row, the runs read, and whether they are what ``meta`` announced."""

    row: ExperimentRow
    table: RunsTable | None
    why_not: str | None
    """Why the runs are not (yet) the experiment's: table missing, N of M runs; None when consistent."""


def consistency(row: ExperimentRow, table: RunsTable | None) -> str | None:
    if table is None:
        return "runs table missing"
    cols = table.columns
    at = cols.index("id_experiment") if "id_experiment" in cols else None
    mine = len(table.rows) if at is None else sum(1 for r in table.rows if r[at] == row.id_experiment)
    expected = expected_runs(row)
    if mine != len(table.rows):
        return f"runs table holds {len(table.rows) - mine} runs of another experiment"
    if expected is not None and mine != expected:
        return f"{mine} of {expected} runs written"
    return None


class MltraqSource:
    """One MLtraq database file as a read-only ``Source``."""

    poll_seconds = POLL_SECONDS

    def __init__(self, path: Path | str, *, name: str | None = None, clock: Callable[[], float] = time.monotonic):
        self.db = MltraqDatabase(path)
        self._name = name or self.db.path.name
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        #: The last consistent record of each experiment, and since when it has been missing or inconsistent.
        self._good: dict[str, ExperimentRecord] = {}
        self._bad_since: dict[str, float] = {}
        self._error_since: float | None = None
        self._signature: object = None
        self.last_scan_seconds = 0.0

    # -- identity ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def location(self) -> str:
        return str(self.db.path)

    @property
    def read_only(self) -> bool:
        return True

    def entries(self) -> Mapping[str, Entry]:
        return self._entries

    def close(self) -> None:
        """Close the database connection (a later read opens it again)."""
        self.db.close()

    # -- reading ----------------------------------------------------------------------------
    def read_experiment(self, row: ExperimentRow, columns: Iterable[str] | None) -> _Read:
        """One experiment's runs (all columns, or only ``columns``) and whether they are complete."""
        try:
            table = self.db.runs_table(table_of(row), only=tuple(columns) if columns is not None else None)
        except MltraqError:
            return _Read(row, None, "runs table missing")
        return _Read(row, table, consistency(row, table))

    def _scan(self) -> dict[str, Entry]:
        now = self._clock()
        try:
            version = FileVersion.of(self.db.path.stat()) if self.db.path.exists() else None
            rows = self.db.experiments()
            reads = {r.name: self.read_experiment(r, (*STATUS_COLUMNS, "id_experiment")) for r in rows}
        except MltraqError as exc:
            return self._unreadable(exc, now)
        self._error_since = None
        entries: dict[str, Entry] = {}
        for name, read in reads.items():
            record = self._record(read, version, now)
            if record is not None:
                entries[name] = record
        for name in list(self._good):
            if name in reads:
                continue
            since = self._bad_since.setdefault(name, now)
            if now - since < REWRITE_GRACE_S:
                entries[name] = self._marked(self._good[name])
            else:
                del self._good[name]
                self._bad_since.pop(name, None)
        return entries

    def _record(self, read: _Read, version: FileVersion | None, now: float) -> ExperimentRecord | None:
        """The row to show; None for a new experiment still being written (it shows once complete, or after the grace)."""
        name = read.row.name
        if read.why_not is None:
            self._bad_since.pop(name, None)
            table = read.table
            assert table is not None
            record = summary_record(self.db.path, version, read.row, table, updated=None)
            previous = self._good.get(name)
            if previous is not None and _same(previous, record):
                record = previous
            else:
                record = replace(record, last_updated=_modified(version))
            self._good[name] = record
            return record
        since = self._bad_since.setdefault(name, now)
        good = self._good.get(name)
        if now - since < REWRITE_GRACE_S:
            return self._marked(good) if good is not None else None
        table = read.table if read.table is not None else RunsTable("", (), ())
        return summary_record(self.db.path, version, read.row, table, updated=_modified(version), note=read.why_not)

    def _marked(self, good: ExperimentRecord) -> ExperimentRecord:
        existing = self._entries.get(good.key)
        if isinstance(existing, ExperimentRecord) and existing.raw_status and existing.raw_status.endswith(REWRITING):
            return existing
        return replace(good, name=f"{good.name} · {REWRITING}" if good.name else REWRITING, raw_status=f"{good.raw_status}; {REWRITING}")

    def _unreadable(self, exc: MltraqError, now: float) -> dict[str, Entry]:
        """The whole database unreadable: keep the last rows for the grace period (a lock passes), then one broken row."""
        if self._error_since is None:
            self._error_since = now
        if self._good and not isinstance(exc, NotMltraq) and now - self._error_since < REWRITE_GRACE_S:
            return dict(self._entries)
        self._good.clear()
        key = self.db.path.name
        return {key: BrokenRecord(key, self.db.path, str(exc))}

    def _rescan(self) -> Delta:
        with self._lock:
            started = time.perf_counter()
            try:
                self._signature = self.db.signature()
            except MltraqError:
                self._signature = None
            old = self._entries
            new = self._scan()
            self._entries = new
            self.last_scan_seconds = time.perf_counter() - started
        upserts = {k: v for k, v in new.items() if old.get(k) is not v}
        return Delta(upserts, tuple(k for k in old if k not in new))

    # -- the Source protocol -------------------------------------------------------------------
    def initial_batches(self) -> Iterator[Delta]:
        yield self._rescan()

    def reconcile(self) -> Delta:
        return self._rescan()

    def hint(self, paths: set[str]) -> Delta:
        return self.poll()

    def poll(self) -> Delta:
        """A re-read if the database moved or a grace period is running out; else an empty delta (one pragma)."""
        try:
            signature: object = self.db.signature()
        except MltraqError:
            signature = None
        if signature == self._signature and signature is not None and not self._bad_since and self._error_since is None:
            return Delta()
        return self._rescan()

    def follow(self, stop: threading.Event) -> Iterator[Delta]:
        """Poll until ``stop`` is set (run in a worker thread), yielding each non-empty delta."""
        while not stop.wait(POLL_SECONDS):
            delta = self.poll()
            if delta:
                yield delta

    def judge(self, entries: Iterable[Entry], probe: LivenessProbe, now: datetime) -> dict[str, StaleVerdict]:
        return {}  # MLtraq records no owner: there is nothing to judge

    def allowed_actions(self, entry: Entry) -> frozenset[str]:
        return frozenset()

    def snapshot_reader(self) -> MltraqSnapshotReader:
        return MltraqSnapshotReader(self)


def _same(a: ExperimentRecord, b: ExperimentRecord) -> bool:
    return replace(a, version=b.version, last_updated=b.last_updated) == b


class MltraqSnapshotReader:
    """One experiment of an MLtraq database read in full for the inspector (every run, every column)."""

    def __init__(self, source: MltraqSource):
        self.source = source
        self.db = source.db
        self._read_at: dict[str, object] = {}
        self._last: dict[str, Snapshot] = {}

    @property
    def base(self) -> Path:
        return self.db.path.parent

    def read(self, key: str, *, on_preview: Callable[[Snapshot], bool] | None = None) -> Snapshot:
        path = self.db.path
        try:
            signature = self.db.signature()
            version = signature[1]
            row = next((r for r in self.db.experiments() if r.name == key), None)
            read = self.source.read_experiment(row, None) if row is not None else None
        except MltraqError as exc:
            return self._keep_or(key, f"cannot read the database: {exc}")
        self._read_at[key] = signature
        if read is None:
            return self._keep_or(key, f"no experiment named {key} in {path.name} (any more)")
        if read.why_not is not None and key in self._last:
            return self._keep_or(key, read.why_not)
        table = read.table if read.table is not None else RunsTable(table_of(read.row), (), ())
        record = summary_record(path, version, read.row, table, updated=_modified(version), note=read.why_not)
        model = full_experiment(read.row, table, record, note=read.why_not)
        text = model.model_dump_json(indent=2, fallback=str)
        snap = Snapshot(key, path, version, text, version.size if version else 0, format=StateFormat.MLTRAQ, model=model, record=record)  # type: ignore[arg-type]
        if read.why_not is None:
            self._last[key] = snap
        return snap

    def _keep_or(self, key: str, why: str) -> Snapshot:
        """The last good read, noted, while the experiment is rewritten; else a snapshot with the reason."""
        last = self._last.get(key)
        if last is not None and isinstance(last.model, MltraqExperiment):
            note = f"{REWRITING} ({why}); showing the last complete read"
            return Snapshot(last.key, last.path, last.version, last.text, last.size, format=last.format,
                            model=last.model.model_copy(update={"note": note}), record=last.record)  # type: ignore[arg-type]
        return Snapshot(key, self.db.path, None, "", reason=why)

    def changed(self, snap: Snapshot) -> bool:
        try:
            return self.db.signature() != self._read_at.get(snap.key)
        except MltraqError:
            return True

    def extras(self, snap: Snapshot) -> Extras:
        model = snap.model
        steps: tuple[StepView, ...] = ()
        if isinstance(model, MltraqExperiment):
            steps = tuple(
                StepView(
                    s.name, s.name, f"{s.pathname or '(no file)'}" + (f":{s.lineno}" if s.lineno is not None else ""),
                    s.code, s.lineno or 1, (), SourceCheck.UNKNOWN,
                    f"MLtraq's codelog records no source hash; recorded by {s.runs} run" + ("" if s.runs == 1 else "s"),
                )
                for s in model.steps
            )
        return Extras(snap.version, None, None, None, "an MLtraq database is read-only here", steps, ())


def open_mltraq(spec: str, read_only: bool, name: str | None) -> MltraqSource | None:
    """Claims ``sqlite:///path`` and any path to an SQLite file; a non-MLtraq SQLite file is a one-line error."""
    if spec.startswith(URL_PREFIX):
        path = Path(spec[len(URL_PREFIX):] or ".")
        if not path.is_file():
            raise SourceError(f"no database at {path} (from {spec})")
    else:
        path = Path(spec)
        if not path.is_file() or not is_sqlite_file(path):
            return None
    source = MltraqSource(path, name=name)
    try:
        source.db.check_mltraq()
    except NotMltraq as exc:
        source.db.close()
        raise SourceError(str(exc)) from None
    except MltraqError:
        pass  # readable later, or a broken row saying why
    return source


__all__ = ["MltraqSnapshotReader", "MltraqSource", "POLL_SECONDS", "REWRITE_GRACE_S", "open_mltraq"]
