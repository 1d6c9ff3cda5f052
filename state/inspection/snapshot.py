"""One read of an experiment file: the bytes' text and the model parsed from those same bytes.

Every failure (unsafe key, file gone, unreadable, broken) becomes a
``reason`` on the snapshot, never an exception, so the inspector can always
show what it found. A big expwatch file can be previewed: its runs decoded
from the JSON before the slow validation, so their table can draw first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_core import from_json

from state.detect import MAX_STATE_FILE_BYTES, BrokenStateFile, NotAnExperiment, StateModel, parse_state, summarize
from state.inspection.processes import process_rows
from state.inspection.study import EntryTraceback, study_tracebacks
from state.lem_study import StudyManifest
from state.native import SCHEMA_PREFIX, ExperimentDoc
from state.paths import UnsafePathError, ensure_inside
from state.record import ExperimentRecord, FileVersion, ProcessRow, StateFormat
from state.store import StateStore, read_limited

#: Files at least this big open in two steps: the runs first, then the validated rest.
PREVIEW_BYTES = 512 * 1024


@dataclass(frozen=True)
class RunsJson:
    """An expwatch file's runs as decoded JSON objects, before (and apart from) validation.

    Validating 10,000 runs costs a few hundred milliseconds; a table of them
    needs only the decoded objects. Entries may be malformed (validation
    reports that); whoever shows them must tolerate it.
    """

    runs: Sequence[Any] = ()
    grid_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """One read of the experiment file: the bytes' text, and the model when it parses."""

    key: str
    path: Path
    version: FileVersion | None
    text: str
    size: int = 0
    reason: str | None = None
    """Why the file is not a readable experiment (broken, gone), else None."""
    format: StateFormat | None = None
    model: StateModel | None = None
    record: ExperimentRecord | None = None
    runs_json: RunsJson | None = None
    """An expwatch document's runs as decoded JSON (None for other formats)."""
    processes: tuple[ProcessRow, ...] = ()
    preview: bool = False
    """Only ``runs_json`` is filled in: the validated snapshot follows."""
    tracebacks: tuple[EntryTraceback, ...] = ()
    """A study's failed entries' traceback files (other formats keep tracebacks in the file)."""

    @property
    def doc(self) -> ExperimentDoc | None:
        return self.model if isinstance(self.model, ExperimentDoc) else None


def _version(st: os.stat_result) -> FileVersion:
    return FileVersion(st.st_ino, st.st_mtime_ns, st.st_size)


def stat_version(path: Path) -> FileVersion | None:
    try:
        return _version(os.stat(path))
    except OSError:
        return None


def read_bytes(path: Path, limit: int) -> tuple[bytes, FileVersion]:
    """Up to ``limit`` + 1 bytes of a regular file, and the version of what was read."""
    data, st = read_limited(path, limit)
    return data, _version(st)


def runs_from_json(data: bytes) -> RunsJson | None:
    """The runs straight from the JSON; None when the data is not an expwatch document."""
    try:
        value = from_json(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    schema = value.get("schema")
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_PREFIX):
        return None
    runs = value.get("runs")
    grid = value.get("grid")
    return RunsJson(
        runs if isinstance(runs, list) else [],
        grid_keys=tuple(str(k) for k in grid) if isinstance(grid, dict) else (),
    )


def read_snapshot(
    store: StateStore, key: str, *, on_preview: Callable[[Snapshot], bool] | None = None
) -> Snapshot:
    """Read and parse the experiment file; every failure becomes a ``reason``, never an exception.

    For a big expwatch file, ``on_preview`` first gets a snapshot holding only
    the decoded runs (``preview=True``), made before the slow validation; if
    it returns False nobody wants the rest and that preview is returned as is.
    The full snapshot keeps the preview's ``runs_json`` object when it still
    matches, so what was built from it can be reused.
    """
    try:
        path = store.path_for(key)
        ensure_inside(store.root, path)
    except UnsafePathError as exc:
        return Snapshot(key, store.root / key, None, "", reason=str(exc))
    try:
        data, version = read_bytes(path, MAX_STATE_FILE_BYTES)
    except FileNotFoundError:
        return Snapshot(key, path, None, "", reason="the file no longer exists")
    except OSError as exc:
        return Snapshot(key, path, stat_version(path), "", reason=f"cannot read: {exc.strerror or exc}")
    runs = runs_from_json(data) if SCHEMA_PREFIX.encode() in data[:4096] else None
    if runs is not None and on_preview is not None and len(data) >= PREVIEW_BYTES:
        early = Snapshot(key, path, version, "", len(data), format=StateFormat.EXPWATCH, runs_json=runs, preview=True)
        if not on_preview(early):
            return early
    return snapshot_of(key, path, version, data, runs=runs)


def snapshot_of(
    key: str, path: Path, version: FileVersion, data: bytes, *, runs: RunsJson | None = None, local: bool = True
) -> Snapshot:
    """The snapshot of a state file's bytes (read here, or published by another host: ``local=False``).

    Only a local file's study has its traceback files read beside it: a
    path another host published names a file on that host, not here.
    """
    text = data.decode("utf-8", errors="replace")
    try:
        fmt, model = parse_state(data)
    except BrokenStateFile as exc:
        return Snapshot(key, path, version, text, len(data), reason=exc.reason)
    except NotAnExperiment as exc:
        return Snapshot(key, path, version, text, len(data), reason=f"not an experiment file ({exc})")
    record = summarize(key, path, version, fmt, model)
    if isinstance(model, ExperimentDoc):
        if runs is None or len(runs.runs) != len(model.runs):
            runs = runs_from_json(data) or RunsJson()
    else:
        runs = None
    tracebacks = study_tracebacks(path.parent, model) if local and isinstance(model, StudyManifest) else ()
    return Snapshot(
        key, path, version, text, len(data),
        format=fmt, model=model, record=record, runs_json=runs, processes=process_rows(model), tracebacks=tracebacks,
    )
