"""The inspector: everything one experiment file holds, kept live while it is open.

A thread worker reads the file once (the raw bytes and the parsed model come
from the same read). For a big expwatch file it first posts the runs table,
built from the plain decoded JSON, and lets that frame draw before the slower
validation (which holds the GIL); then it posts the validated read (Overview,
Processes, Runs, Run), then the rest (the raw text split for display, the
owner verdict, the journal, the step sources compared with the files on
disk). Only the first tab's content is composed; the others mount when first
shown. A timer starts a worker that polls the file's version with ``os.stat``,
never while another runs; on a change everything is re-read and the sections
are updated in place, keeping the selected tab, the runs cursor and the
tree's expanded nodes.

The screen knows nothing of runtime/: the app passes the verdict and the
resume command as callables, which run in the worker.
"""

from __future__ import annotations

import ast
import gc
import os
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel
from pydantic_core import from_json
from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.highlight import highlight
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState, get_current_worker

from state.detect import MAX_STATE_FILE_BYTES, BrokenStateFile, NotAnExperiment, StateModel, parse_state, summarize
from state.hashing import source_hash
from state.journal import JournalEntry
from state.lem import LemExperimentState
from state.native import SCHEMA_PREFIX, ExperimentDoc, RunRecord, StepInfo
from state.paths import UnsafePathError, ensure_inside
from state.record import ExperimentRecord, FileVersion, StateFormat
from state.store import StateStore, read_limited
from state.verdict import Liveness, StaleVerdict, human_age
from widgets.field_tree import FieldTree
from widgets.history_log import HistoryLog, HistoryRow
from widgets.overview_panel import OverviewPanel, OverviewSection
from widgets.raw_json import RawJsonView, RawText
from widgets.run_table import RunTable, RunTableData, build_legacy_run_table, build_run_table, format_value
from widgets.step_source import SourceCheck, StepSource, StepView

VerdictProvider = Callable[[ExperimentRecord], StaleVerdict]
ResumeCommand = Callable[[str], str]
Clock = Callable[[], datetime]

#: Seconds between re-judging the owner and re-reading the journal and step files
#: when the experiment file itself has not changed.
EXTRAS_INTERVAL_S = 5.0
#: Study files larger than this are not read to compare step sources.
MAX_SOURCE_BYTES = 4 * 1024 * 1024
#: Files at least this big open in two steps: the runs table first, then the validated rest.
PREVIEW_BYTES = 512 * 1024
#: How long the worker lets the first frame draw before validating (validation holds the GIL).
PREVIEW_FRAME_WAIT_S = 0.5


class Section(str, Enum):
    """The inspector's tabs (the value is the TabPane id)."""

    OVERVIEW = "overview"
    PROCESSES = "processes"
    RUNS = "runs"
    RUN = "run"
    STEPS = "steps"
    HISTORY = "history"
    RAW = "raw"


# -- what the worker produces -------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcessLine:
    key: str
    cells: tuple[str, ...]
    status: str


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
    runs: RunTableData | None = None
    run_index: Mapping[str, int] = field(default_factory=dict)
    process_columns: tuple[str, ...] = ()
    processes: tuple[ProcessLine, ...] = ()
    preview: bool = False
    """Only ``runs`` is filled in: the validated snapshot follows."""

    @property
    def doc(self) -> ExperimentDoc | None:
        return self.model if isinstance(self.model, ExperimentDoc) else None

    def run(self, run_id: str) -> RunRecord | None:
        doc = self.doc
        index = self.run_index.get(run_id)
        return None if doc is None or index is None else doc.runs[index]


@dataclass(frozen=True)
class Extras:
    """The slower half of a load; ``raw`` is None when the text did not change."""

    version: FileVersion | None
    raw: RawText | None
    verdict: StaleVerdict | None
    verdict_error: str | None
    resume: str | None
    resume_error: str | None
    steps: tuple[StepView, ...]
    history: tuple[HistoryRow, ...]


# -- reading (worker thread only) ------------------------------------------------


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


def runs_from_json(data: bytes) -> RunTableData | None:
    """The runs table straight from the JSON, before (and apart from) validation.

    Validating 10,000 runs costs a few hundred milliseconds; the table needs
    only the decoded objects. None when the data is not an expwatch document.
    """
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
    return build_run_table(
        runs if isinstance(runs, list) else [],
        grid_keys=[str(k) for k in grid] if isinstance(grid, dict) else [],
    )


def read_snapshot(
    store: StateStore, key: str, *, on_preview: Callable[[Snapshot], bool] | None = None
) -> Snapshot:
    """Read and parse the experiment file; every failure becomes a ``reason``, never an exception.

    For a big expwatch file, ``on_preview`` first gets a snapshot holding only
    the runs table (``preview=True``), built before the slow validation; if it
    returns False nobody wants the rest and that preview is returned as is.
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
        early = Snapshot(key, path, version, "", len(data), format=StateFormat.EXPWATCH, runs=runs, preview=True)
        if not on_preview(early):
            return early
    text = data.decode("utf-8", errors="replace")
    try:
        fmt, model = parse_state(data)
    except BrokenStateFile as exc:
        return Snapshot(key, path, version, text, len(data), reason=exc.reason)
    except NotAnExperiment as exc:
        return Snapshot(key, path, version, text, len(data), reason=f"not an experiment file ({exc})")
    record = summarize(key, path, version, fmt, model)
    run_index: dict[str, int] = {}
    if isinstance(model, ExperimentDoc):
        if runs is None or len(runs.rows) != len(model.runs):
            runs = runs_from_json(data) or RunTableData()
        run_index = {row.key: n for n, row in enumerate(runs.rows)}
    elif isinstance(model, LemExperimentState) and (model.completed_runs or model.failed_runs):
        runs = build_legacy_run_table(model.completed_runs, model.failed_runs)
    else:
        runs = None
    columns, processes = process_lines(model)
    return Snapshot(
        key, path, version, text, len(data),
        format=fmt, model=model, record=record, runs=runs, run_index=run_index,
        process_columns=columns, processes=processes,
    )


def _time(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone()
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _short_time(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone()
    return value.strftime("%m-%d %H:%M:%S")


def column_widths(labels: Sequence[str], rows: Sequence[Sequence[str]], *, limit: int = 40) -> list[int]:
    """Widths that fit every cell (up to ``limit``), so a DataTable never has to measure."""
    widths = [cell_len(label) for label in labels]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], cell_len(cell))
    return [min(w, limit) for w in widths]


def process_lines(model: StateModel) -> tuple[tuple[str, ...], tuple[ProcessLine, ...]]:
    columns, lines = _process_lines(model)
    return columns, tuple(ProcessLine(line.key, tuple(map(format_value, line.cells)), line.status) for line in lines)


def _process_lines(model: StateModel) -> tuple[tuple[str, ...], tuple[ProcessLine, ...]]:
    if isinstance(model, ExperimentDoc):
        columns = ("proc", "status", "gpu", "pid", "host", "done/fail/all", "run", "step", "heartbeat", "started", "error")
        lines = []
        for p in sorted(model.processes.values(), key=lambda p: p.process_index):
            owner = p.owner
            lines.append(ProcessLine(
                str(p.process_index),
                (
                    str(p.process_index), p.status.value,
                    "" if p.gpu_id is None else str(p.gpu_id),
                    str(owner.pid) if owner else "", owner.host if owner else "",
                    f"{p.runs_done}/{p.runs_failed}/{p.runs_total}",
                    p.current_run or "", p.current_step or "",
                    _short_time(p.heartbeat_at), _short_time(p.started_at), p.error_message or "",
                ),
                p.status.value,
            ))
        return columns, tuple(lines)
    if isinstance(model, LemExperimentState):
        columns = ("proc", "status", "gpu", "started", "completed", "error")
        lines = [
            ProcessLine(
                str(index),
                (str(p.process_index), p.status.value, "" if p.gpu_id is None else str(p.gpu_id),
                 _short_time(p.started_at), _short_time(p.completed_at), p.error_message or ""),
                p.status.value,
            )
            for index, p in sorted(model.process_progress.items())
        ]
        return columns, tuple(lines)
    return (), ()


def function_source(text: str, qualname: str, line: int | None) -> str | None:
    """The text of a function as ``inspect.getsource`` gives it (decorators included).

    Found by qualified name (``<locals>`` parts skipped), else by its first line.
    Raises ``SyntaxError`` when the file does not parse.
    """
    tree = ast.parse(text)
    Defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)

    def first_line(node: ast.AST) -> int:
        decorators = getattr(node, "decorator_list", [])
        return min([d.lineno for d in decorators] + [node.lineno])  # type: ignore[attr-defined]

    def by_name(body: list[ast.stmt], parts: list[str]) -> ast.AST | None:
        if not parts:
            return None
        for node in body:
            if isinstance(node, Defs) and node.name == parts[0]:
                return node if len(parts) == 1 else by_name(node.body, parts[1:])
        return None

    parts = [p for p in qualname.split(".") if p != "<locals>"]
    found = by_name(tree.body, parts)
    if found is None and line is not None:
        found = next(
            (n for n in ast.walk(tree) if isinstance(n, Defs) and first_line(n) == line and n.name == parts[-1:][0]),
            None,
        ) if parts else None
    if found is None:
        return None
    lines = text.splitlines(keepends=True)
    return "".join(lines[first_line(found) - 1 : found.end_lineno])  # type: ignore[attr-defined]


def display_path(path: str | Path, base: Path) -> str:
    """A path as the reader wants it: relative to the project when inside it, ``~`` for home."""
    p = Path(path)
    if not p.is_absolute():
        return str(p)
    for root, prefix in ((base, ""), (Path.home(), "~/")):
        try:
            return prefix + str(p.relative_to(root))
        except ValueError:
            continue
    return str(p)


class ExtrasReader:
    """The slower reads, with caches keyed by file version; used by one worker at a time."""

    def __init__(self, store: StateStore, verdict_provider: VerdictProvider | None, resume_command: ResumeCommand | None):
        self.store = store
        self.verdict_provider = verdict_provider
        self.resume_command = resume_command
        self._sources: dict[Path, tuple[FileVersion, str | None, str]] = {}
        self._journal: tuple[FileVersion | None, tuple[JournalEntry, ...]] | None = None

    @property
    def base(self) -> Path:
        """The project directory: the one holding the state directory."""
        return Path(os.path.abspath(self.store.root)).parent

    def read(self, snap: Snapshot, *, with_raw: bool) -> Extras:
        raw = RawText.from_text(snap.text) if with_raw else None
        verdict = verdict_error = resume = resume_error = None
        if snap.record is not None and self.verdict_provider is not None:
            try:
                verdict = self.verdict_provider(snap.record)
            except Exception as exc:  # the provider probes processes: show why it could not
                verdict_error = f"{type(exc).__name__}: {exc}"
        if snap.model is not None:
            if self.resume_command is not None:
                try:
                    resume = self.resume_command(snap.key)
                except Exception as exc:  # a refusal (owner alive, no template) is information
                    resume_error = str(exc) or type(exc).__name__
            elif snap.doc is not None and snap.doc.resume is not None:
                spec = snap.doc.resume
                resume = f"{shlex.join(spec.argv)}   (in {display_path(spec.cwd, self.base)})"
        steps = self.step_views(snap.doc) if snap.doc is not None else ()
        history = self.history(snap) if snap.model is not None else ()
        return Extras(snap.version, raw, verdict, verdict_error, resume, resume_error, steps, history)

    # -- steps --------------------------------------------------------------
    def _file_text(self, path: Path) -> tuple[str | None, str]:
        """(text, why not) of a study file, re-read only when its version changes."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None, "missing"
        except OSError as exc:
            return None, exc.strerror or str(exc)
        version = _version(st)
        cached = self._sources.get(path)
        if cached and cached[0] == version:
            return cached[1], cached[2]
        if st.st_size > MAX_SOURCE_BYTES:
            result: tuple[str | None, str] = (None, "file too large to compare")
        else:
            try:
                result = (path.read_bytes().decode("utf-8"), "")
            except UnicodeDecodeError:
                result = (None, "file is not UTF-8")
            except OSError as exc:
                result = (None, exc.strerror or str(exc))
        self._sources[path] = (version, *result)
        return result

    def check_step(self, step: StepInfo, cwd: Path) -> tuple[SourceCheck, str]:
        if not step.file:
            return SourceCheck.UNKNOWN, "no file recorded"
        if not step.source_hash:
            return SourceCheck.UNKNOWN, "no source hash recorded"
        path = Path(step.file)
        if not path.is_absolute():
            candidates = [cwd / path, self.base / path]
            path = next((c for c in candidates if c.exists()), candidates[0])
        text, why = self._file_text(path)
        if text is None:
            return (SourceCheck.MISSING, "") if why == "missing" else (SourceCheck.UNKNOWN, why)
        try:
            current = function_source(text, step.qualname, step.line)
        except SyntaxError as exc:
            return SourceCheck.UNKNOWN, f"file does not parse (line {exc.lineno})"
        if current is None:
            return SourceCheck.CHANGED, f"{step.qualname} is no longer in the file"
        now_hash = source_hash(current)
        if now_hash == step.source_hash:
            return SourceCheck.SAME, ""
        return SourceCheck.CHANGED, f"source hash {step.source_hash[:8]} at start, {now_hash[:8]} now"

    def step_views(self, doc: ExperimentDoc) -> tuple[StepView, ...]:
        cwd = Path(doc.resume.cwd) if doc.resume else self.base
        here: dict[str, list[str]] = {}
        for p in doc.processes.values():
            if p.current_step and p.status.value == "running":
                label = f"process {p.process_index}" + (f" (run {p.current_run})" if p.current_run else "")
                here.setdefault(p.current_step, []).append(label)
        views = []
        for step in doc.steps:
            check, detail = self.check_step(step, cwd)
            running = tuple(here.get(step.name, []) or here.get(step.qualname, []))
            location = display_path(step.file, self.base) if step.file else "(no file)"
            if step.line is not None:
                location += f":{step.line}"
            views.append(StepView(step.name, step.qualname, location, step.source, step.line or 1, running, check, detail))
        return tuple(views)

    # -- history ------------------------------------------------------------
    def journal_entries(self, experiment_id: str) -> tuple[JournalEntry, ...]:
        journal = self.store.journal
        version = stat_version(journal.path)
        if self._journal is None or self._journal[0] != version:
            self._journal = (version, tuple(journal.entries()) if version else ())
        return tuple(e for e in self._journal[1] if e.experiment == experiment_id)

    def history(self, snap: Snapshot) -> tuple[HistoryRow, ...]:
        assert snap.model is not None
        dated: list[tuple[float, int, HistoryRow]] = []
        if snap.doc is not None:
            for n, h in enumerate(snap.doc.history):
                change = f"{h.from_status.value if h.from_status else '∅'} → {h.to.value}"
                dated.append((_stamp(h.at), n, HistoryRow(_time(h.at), "status", change, h.who, h.why or "")))
        for n, e in enumerate(self.journal_entries(snap.model.experiment_id)):
            try:
                at = datetime.fromisoformat(e.time)
            except ValueError:
                at = None
            change = f"{e.action}: {e.from_status or '∅'} → {e.to_status or '∅'}"
            row = HistoryRow(_time(at) if at else e.time, "journal", change, f"{e.user}@{e.host}", e.reason or "")
            dated.append((_stamp(at) if at else float("inf"), 100_000 + n, row))
        dated.sort(key=lambda t: (t[0], t[1]))
        return tuple(row for _, _, row in dated)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Hold off cyclic garbage collection while a big file is decoded and validated.

    Decoding 10,000 runs allocates about a million objects, which triggers full
    collections that walk everything alive (about 100 ms each here) in the
    middle of opening the screen. Reference counting still frees what it can;
    the collector runs again afterwards. Left alone if something else disabled it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _stamp(value: datetime) -> float:
    return value.timestamp() if value.tzinfo else value.astimezone().timestamp()


# -- presentation helpers (main thread) ----------------------------------------

STATUS_STYLE = {
    "running": "bold $text-accent",
    "completed": "$text-success",
    "aggregated": "bold $text-success",
    "failed": "bold $text-error",
    "interrupted": "bold $text-warning",
    "initialised": "$text-muted",
    "pending": "$text-muted",
}
VERDICT_STYLE = {Liveness.ALIVE: "bold $text-success", Liveness.DEAD: "bold $text-error", Liveness.UNKNOWN: "bold $text-warning"}
MUTED = "$text-muted"


def status_content(status: str) -> Content:
    return Content.styled(status, STATUS_STYLE.get(status, ""))


def _when(value: datetime, now: datetime) -> Content:
    aware = value if value.tzinfo else value.astimezone()
    delta = (now - aware).total_seconds()
    age = f"{human_age(delta)} ago" if delta >= 0 else f"in {human_age(-delta)}"
    return Content.assemble(_time(value), ("  (" + age + ")", MUTED))


def _inline(value: Any, limit: int = 90) -> str | None:
    text = format_value(value)
    return text if len(text) <= limit else None


def overview_value(name: str, value: Any, snap: Snapshot, now: datetime, base: Path) -> Content | str:
    """One top-level field as the Overview shows it: short values inline, big ones summarised."""
    doc = snap.doc
    if value is None:
        return Content.styled("—", MUTED)
    if name in ("status",) and isinstance(value, Enum):
        return status_content(value.value)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return _when(value, now)
    if name == "study_path" or name == "log_path" or name == "config_path":
        return display_path(value, base)
    if doc is not None and name == "runs":
        r = snap.record
        assert r is not None
        pending = r.runs_total - r.runs_done - r.runs_failed
        return Content.assemble(
            f"{r.runs_total} runs: ", (f"{r.runs_done} completed", STATUS_STYLE["completed"]), ", ",
            (f"{r.runs_failed} failed", STATUS_STYLE["failed"] if r.runs_failed else MUTED), f", {pending} other",
            ("   → Runs", MUTED),
        )
    if doc is not None and name == "processes":
        counts: dict[str, int] = {}
        for p in value.values():
            counts[p.status.value] = counts.get(p.status.value, 0) + 1
        detail = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return Content.assemble(f"{len(value)} processes" + (f" ({detail})" if detail else ""), ("   → Processes", MUTED))
    if doc is not None and name == "steps":
        return Content.assemble(f"{len(value)} steps: " + ", ".join(s.name for s in value), ("   → Steps", MUTED))
    if name == "history" and isinstance(value, list):
        return Content.assemble(f"{len(value)} transitions", ("   → History", MUTED))
    if name == "process_progress":
        return Content.assemble(f"{len(value)} processes", ("   → Processes", MUTED))
    if name in ("completed_runs", "failed_runs") and isinstance(value, dict):
        return Content.assemble(f"{len(value)} run" + ("" if len(value) == 1 else "s"), ("   → Runs", MUTED) if value else "")
    if name == "owner":
        o = value
        bits = [f"pid {o.pid} on {o.host}", o.role]
        if o.process_index is not None:
            bits.append(f"process {o.process_index}")
        if o.boot_id:
            bits.append(f"boot {o.boot_id[:8]}")
        if o.start_ticks is not None:
            bits.append(f"start ticks {o.start_ticks}")
        elif o.start_time is not None:
            bits.append(f"started {_time(datetime.fromtimestamp(o.start_time).astimezone())}")
        return ", ".join(bits)
    if name == "resume":
        return f"{shlex.join(value.argv)}\n(in {display_path(value.cwd, base)})"
    if name == "energy":
        used = value.used_joules
        gpus = ", ".join(str(g) for g in value.gpu_ids) or "none"
        text = f"{used:.1f} J" if used is not None else "no samples"
        return f"{text} on GPUs {gpus}" + (" (simulated)" if value.simulated else "")
    if name == "devices" and isinstance(value, list):
        return ", ".join(f"{d.name}: {d.status.value}" for d in value) if value else "[]"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    if isinstance(value, Mapping) and value and len(value) <= 12 and all(
        _inline(v, 60) is not None and not isinstance(v, Mapping | list) for v in value.values()
    ):
        return "\n".join(f"{k}: {format_value(v)}" for k, v in value.items())
    inline = _inline(value)
    if inline is not None:
        return inline
    kind = f"{{{len(value)} keys}}" if isinstance(value, Mapping) else f"[{len(value)} items]" if isinstance(value, list) else "…"
    return Content.assemble(kind, ("   → Raw", MUTED))


def overview_sections(snap: Snapshot, extras: Extras | None, *, now: datetime, base: Path, has_verdict: bool) -> list[OverviewSection]:
    file_rows: list[tuple[str, Content | str]] = [("file", display_path(snap.path, base))]
    if snap.version is not None:
        modified = datetime.fromtimestamp(snap.version.mtime_ns / 1e9).astimezone()
        file_rows += [("size", f"{snap.version.size} bytes"), ("modified", _when(modified, now))]
    if snap.format is not None:
        file_rows.append(("format", snap.format.value))
    if snap.model is None:
        lines = snap.text.split("\n")
        preview = "\n".join(lines[:12]) + ("\n…" if len(lines) > 12 else "")
        note = Content.assemble(("✖ " + (snap.reason or "unreadable"), "bold $text-error"))
        sections = [OverviewSection("Unreadable file", tuple(file_rows), note)]
        if snap.text:
            sections.append(OverviewSection("Raw bytes (decoded, bad bytes replaced)  → Raw", note=Content(preview)))
        return sections
    model = snap.model
    fields = [
        (name, overview_value(name, getattr(model, name), snap, now, base))
        for name in type(model).model_fields
    ]
    label = {"schema_": "schema"}
    sections: list[OverviewSection] = []
    if not has_verdict:
        verdict_note: Content = Content.styled("verdict: n/a (no liveness probe here)", MUTED)
        evidence: tuple[tuple[str, Content | str], ...] = ()
    elif extras is None:
        verdict_note, evidence = Content.styled("verdict: judging…", MUTED), ()
    elif extras.verdict is None:
        verdict_note, evidence = Content.styled(f"verdict: n/a ({extras.verdict_error or 'no record'})", MUTED), ()
    else:
        v = extras.verdict
        verdict_note = Content.assemble("verdict: ", (v.liveness.value, VERDICT_STYLE[v.liveness]), f" — {v.reason}")
        evidence = tuple(("•", e) for e in v.evidence)
    sections.append(OverviewSection("Owner", evidence, verdict_note))
    if extras is None:
        resume_rows: tuple[tuple[str, Content | str], ...] = (("command", Content.styled("…", MUTED)),)
    elif extras.resume:
        resume_rows = (("command", extras.resume),)
    else:
        why = extras.resume_error or "no resume command for this experiment"
        resume_rows = (("command", Content.styled(f"n/a: {why}", MUTED)),)
    sections.append(OverviewSection("Resume", resume_rows))
    sections.append(OverviewSection("Experiment", tuple((label.get(n, n), v) for n, v in fields)))
    sections.append(OverviewSection("File", tuple(file_rows)))
    return sections


def run_header(run: RunRecord) -> Content:
    parts: list[Content | str | tuple[str, str]] = [
        ("run ", MUTED), (run.id_run, "bold"), ("  #", MUTED), str(run.index), "  ", status_content(run.status.value),
        ("  attempt ", MUTED), str(run.attempt),
    ]
    if run.process_index is not None:
        parts += [("  process ", MUTED), str(run.process_index)]
    if run.current_step:
        parts += [("  step ", MUTED), run.current_step]
    if run.started_at:
        parts += [("\nstarted ", MUTED), _time(run.started_at)]
    if run.completed_at:
        parts += [("  finished ", MUTED), _time(run.completed_at)]
    return Content.assemble(*parts)


def exception_content(run: RunRecord) -> Content:
    exc = run.exception
    if exc is None:
        return Content.styled("no exception", f"italic {MUTED}")
    head = Content.assemble((exc.type, "bold $text-error"), ": ", exc.message)
    if not exc.traceback.strip():
        return head
    return Content.assemble(head, "\n\n", highlight(exc.traceback.rstrip("\n"), language="pytb"))


def visible_sections(snap: Snapshot) -> set[Section]:
    if snap.model is None:
        return {Section.OVERVIEW, Section.RAW}
    shown = {Section.OVERVIEW, Section.HISTORY, Section.RAW}
    if isinstance(snap.model, ExperimentDoc):
        return shown | {Section.PROCESSES, Section.RUNS, Section.RUN, Section.STEPS}
    if isinstance(snap.model, LemExperimentState):
        shown.add(Section.PROCESSES)
        if snap.runs is not None:
            shown.add(Section.RUNS)
    return shown


# -- the screen ---------------------------------------------------------------

SECTION_TITLES = {
    Section.OVERVIEW: "Overview",
    Section.PROCESSES: "Processes",
    Section.RUNS: "Runs",
    Section.RUN: "Run",
    Section.STEPS: "Steps",
    Section.HISTORY: "History",
    Section.RAW: "Raw",
}


class InspectorScreen(Screen[None]):
    """Everything one experiment file holds, in tabs, following the file while open."""

    CSS_PATH = "../inspector.tcss"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("slash", "find", "Filter/search"),
        Binding("r", "reload", "Reload"),
        *(Binding(str(n), f"show_section({n})", s.name.title(), show=False) for n, s in enumerate(Section, 1)),
    ]

    class Loaded(Message):
        """A fresh read of the file (posted from the worker thread).

        ``drawn`` (previews only) is set once the screen has refreshed with it.
        """

        def __init__(self, snapshot: Snapshot, drawn: threading.Event | None = None) -> None:
            super().__init__()
            self.snapshot = snapshot
            self.drawn = drawn

    class ExtrasLoaded(Message):
        """Verdict, journal, step checks and the raw text (posted from the worker thread)."""

        def __init__(self, extras: Extras) -> None:
            super().__init__()
            self.extras = extras

    def __init__(
        self,
        store: StateStore,
        key: str,
        *,
        verdict_provider: VerdictProvider | None = None,
        resume_command: ResumeCommand | None = None,
        now: Clock | None = None,
        poll_interval: float = 1.0,
        section: Section | str = Section.OVERVIEW,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.store = store
        self.key = key
        self.verdict_provider = verdict_provider
        self.resume_command = resume_command
        self.now: Clock = now or (lambda: datetime.now().astimezone())
        self.poll_interval = poll_interval
        self.initial_section = Section(section)
        self.snapshot: Snapshot | None = None
        self.extras: Extras | None = None
        self.selected_run: str | None = None
        self.load_count = 0
        self._reader = ExtrasReader(store, verdict_provider, resume_command)
        self._loader: Worker[Snapshot | None] | None = None
        self._extras_at = 0.0
        self._shown: set[Section] | None = None
        self._ready: set[Section] = set()
        """Tabs whose content is mounted."""
        self._process_columns: tuple[tuple[str, int], ...] = ()

    # -- layout ---------------------------------------------------------------
    def compose(self) -> ComposeResult:
        """All tabs, but only the first one's content: the others mount when first shown."""
        yield Static(Content.styled(f"loading {self.key}…", MUTED), id="inspector-title")
        with TabbedContent(initial=self.initial_section.value, id="sections"):
            for section in Section:
                with TabPane(SECTION_TITLES[section], id=section.value):
                    if section is self.initial_section:
                        yield from self._section_widgets(section)
        self._ready.add(self.initial_section)
        yield Footer()

    def _section_widgets(self, section: Section) -> list[Widget]:
        if section is Section.OVERVIEW:
            return [VerticalScroll(OverviewPanel(id="overview-panel"), id="overview-scroll")]
        if section is Section.PROCESSES:
            return [DataTable(id="process-table", cursor_type="row", zebra_stripes=True)]
        if section is Section.RUNS:
            bar = Horizontal(
                Input(placeholder="filter runs: status, id, params… (/)", id="run-filter"),
                Static(id="run-count"),
                id="runs-bar",
            )
            return [bar, RunTable(id="run-table")]
        if section is Section.RUN:
            exception = VerticalScroll(Static(id="run-exception"), id="run-exception-scroll")
            return [Static(id="run-header"), Horizontal(FieldTree(id="run-fields"), exception, id="run-body")]
        if section is Section.STEPS:
            return [VerticalScroll(id="step-list")]
        if section is Section.HISTORY:
            return [HistoryLog(id="history-log")]
        bar = Horizontal(Input(placeholder="search the file (/)", id="raw-search"), Static(id="raw-matches"), id="raw-bar")
        return [bar, RawJsonView(id="raw-view")]

    async def _ensure_section(self, section: Section) -> None:
        """Mount a tab's content the first time it is shown, filled from the current read."""
        if section in self._ready:
            return
        self._ready.add(section)
        await self.query_one(f"#{section.value}", TabPane).mount_all(self._section_widgets(section))
        self._fill(section)

    @on(TabbedContent.TabActivated, "#sections")
    async def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id:
            await self._ensure_section(Section(event.pane.id))

    async def show_section(self, section: Section) -> None:
        """Switch to a tab (if the file has it), its content mounted."""
        if self._shown is not None and section not in self._shown:
            return
        self.query_one(TabbedContent).active = section.value
        await self._ensure_section(section)

    def _fill(self, section: Section) -> None:
        """Show the current read (and extras) in one mounted tab; each widget skips unchanged data."""
        snap, extras = self.snapshot, self.extras
        if section is Section.OVERVIEW and snap is not None:
            self._render_overview(snap)
        elif section is Section.PROCESSES and snap is not None:
            self._apply_processes(snap)
        elif section is Section.RUNS and snap is not None:
            self.query_one(RunTable).set_data(snap.runs or RunTableData())
            self._update_run_count()
        elif section is Section.RUN:
            self._render_run_detail()
        elif section is Section.STEPS and extras is not None:
            self._apply_steps(extras.steps)
        elif section is Section.HISTORY and extras is not None:
            self.query_one(HistoryLog).set_rows(extras.history)
        elif section is Section.RAW and extras is not None and extras.raw is not None:
            view = self.query_one(RawJsonView)
            if view.raw is not extras.raw:
                view.set_raw(extras.raw)

    def on_mount(self) -> None:
        self._fill(self.initial_section)
        self._start_load(force=True)
        self.set_interval(self.poll_interval, self._poll)

    # -- loading --------------------------------------------------------------
    @property
    def loading_now(self) -> bool:
        """Whether a read of the file is in progress."""
        return self._loader is not None and not self._loader.is_finished

    def _poll(self) -> None:
        self._start_load(force=False)

    def _start_load(self, *, force: bool) -> bool:
        """Start a read unless one is running (polls never pile up)."""
        if self.loading_now:
            return False
        extras_due = force or time.monotonic() - self._extras_at >= EXTRAS_INTERVAL_S
        # The last worker's read, even if its message is still queued: never read twice for one change.
        previous = self._loader.result if self._loader is not None else None
        self._loader = self._load(previous or self.snapshot, force, extras_due)
        return True

    @work(thread=True, exit_on_error=False, group="inspector-load", description="read the experiment file")
    def _load(self, previous: Snapshot | None, force: bool, extras_due: bool) -> Snapshot | None:
        """Read the file if it changed (or ``force``), then the extras if due; returns the read it used."""
        worker = get_current_worker()
        snap = previous
        changed = force or previous is None or stat_version(previous.path) != previous.version
        if changed:

            def preview(early: Snapshot) -> bool:
                drawn = threading.Event()
                self.post_message(self.Loaded(early, drawn))
                drawn.wait(PREVIEW_FRAME_WAIT_S)
                return not worker.is_cancelled

            with _collector_paused():
                snap = read_snapshot(self.store, self.key, on_preview=preview if previous is None else None)
            if worker.is_cancelled:
                return snap
            self.post_message(self.Loaded(snap))
        elif not extras_due:
            return snap
        assert snap is not None
        text_changed = previous is None or snap.text != previous.text
        extras = self._reader.read(snap, with_raw=text_changed)
        if not worker.is_cancelled:
            self.post_message(self.ExtrasLoaded(extras))
        return snap

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is self._loader and event.state is WorkerState.ERROR:
            error = event.worker.error
            self.query_one("#inspector-title", Static).update(
                Content.styled(f"reading {self.key} failed: {type(error).__name__}: {error}", "bold $text-error")
            )

    def on_inspector_screen_loaded(self, message: Loaded) -> None:
        if message.snapshot.preview:
            self._apply_preview(message.snapshot)
            if message.drawn is not None:
                self.call_after_refresh(message.drawn.set)
            return
        self.snapshot = message.snapshot
        self.load_count += 1
        self._apply_snapshot(message.snapshot)

    def on_inspector_screen_extras_loaded(self, message: ExtrasLoaded) -> None:
        extras = message.extras
        if self.extras is not None and extras.raw is None:
            extras = replace(extras, raw=self.extras.raw)
        self.extras = extras
        self._extras_at = time.monotonic()
        for section in (Section.OVERVIEW, Section.STEPS, Section.HISTORY, Section.RAW):
            if section in self._ready:
                self._fill(section)

    # -- applying a read ------------------------------------------------------
    def _apply_snapshot(self, snap: Snapshot) -> None:
        self._update_title(snap)
        self._update_sections(visible_sections(snap))
        for section in (Section.OVERVIEW, Section.PROCESSES, Section.RUNS, Section.RUN):
            if section in self._ready:
                self._fill(section)

    def _apply_preview(self, snap: Snapshot) -> None:
        if self.snapshot is not None or Section.RUNS not in self._ready:
            return
        self.query_one(RunTable).set_data(snap.runs or RunTableData())
        self._update_run_count()
        total = len(snap.runs.rows) if snap.runs else 0
        reading = f"reading {snap.path.name} ({snap.size / 1e6:.1f} MB, {total:,} runs)…"
        self.query_one("#inspector-title", Static).update(Content.styled(reading, MUTED))

    def _update_title(self, snap: Snapshot) -> None:
        title = self.query_one("#inspector-title", Static)
        if snap.model is None:
            title.update(Content.assemble((snap.key, "bold"), "  ", ("unreadable", "bold $text-error"), ("  " + snap.path.name, MUTED)))
            return
        record = snap.record
        assert record is not None
        parts: list[Content | str | tuple[str, str]] = [(snap.model.experiment_id, "bold"), "  ", status_content(record.status)]
        if record.raw_status and record.raw_status != record.status:
            parts.append((f" ({record.raw_status})", MUTED))
        if record.label:
            parts.append("  " + record.label)
        parts.append((f"  {snap.path.name} · {snap.format.value if snap.format else ''}", MUTED))
        title.update(Content.assemble(*parts))

    def _update_sections(self, shown: set[Section]) -> None:
        if shown == self._shown:
            return
        self._shown = shown
        tabs = self.query_one(TabbedContent)
        for section in Section:
            if section in shown:
                tabs.show_tab(section.value)
            else:
                tabs.hide_tab(section.value)
        if Section(tabs.active or Section.OVERVIEW.value) not in shown:
            tabs.active = Section.OVERVIEW.value

    def _render_overview(self, snap: Snapshot) -> None:
        if Section.OVERVIEW not in self._ready:
            return
        sections = overview_sections(
            snap, self.extras, now=self.now(), base=self._reader.base, has_verdict=self.verdict_provider is not None
        )
        self.query_one(OverviewPanel).show(sections)

    def _apply_processes(self, snap: Snapshot) -> None:
        """Keyed update: changed cells updated, new processes added, gone ones removed.

        Column widths are given, not measured: the table is rebuilt (keeping the
        cursor row) only when a value no longer fits its column. Cells are
        ``Text`` (a DataTable would parse ``str`` as markup).
        """
        table = self.query_one("#process-table", DataTable)
        widths = column_widths(snap.process_columns, [line.cells for line in snap.processes])
        layout = tuple(zip(snap.process_columns, widths))
        if layout != self._process_columns:
            cursor = table.cursor_row
            table.clear(columns=True)
            for label, width in layout:
                table.add_column(label, width=width, key=label)
            self._process_columns = layout
            for line in snap.processes:
                table.add_row(*map(Text, line.cells), key=line.key)
            if snap.processes:
                table.move_cursor(row=min(cursor, len(snap.processes) - 1), animate=False)
            return
        columns = list(table.columns)
        existing = {row.value for row in table.rows}
        wanted = {line.key for line in snap.processes}
        for key in existing - wanted:
            table.remove_row(key)
        for line in snap.processes:
            if line.key in existing:
                for column, cell in zip(columns, line.cells):
                    if table.get_cell(line.key, column).plain != cell:
                        table.update_cell(line.key, column, Text(cell))
            else:
                table.add_row(*map(Text, line.cells), key=line.key)

    def _update_run_count(self) -> None:
        if Section.RUNS not in self._ready:
            return
        table = self.query_one(RunTable)
        total = table.total_rows
        text = f"{total:,} runs" if not table.filter_text else f"{table.row_count:,} of {total:,} runs"
        self.query_one("#run-count", Static).update(text)

    def _render_run_detail(self) -> None:
        if Section.RUN not in self._ready:
            return
        snap = self.snapshot
        header = self.query_one("#run-header", Static)
        tree = self.query_one(FieldTree)
        exception = self.query_one("#run-exception", Static)
        run = snap.run(self.selected_run) if snap is not None and self.selected_run else None
        self.query_one("#run-body").display = run is not None
        if run is None:
            hint = "select a run in Runs (Enter) to see its fields, params, state and exception"
            if self.selected_run:
                hint = f"run {self.selected_run} is no longer in the file"
            header.update(Content.styled(hint, f"italic {MUTED}"))
            tree.show_sections(())
            exception.update("")
            return
        doc = snap.doc if snap else None
        header.update(run_header(run))
        tree.show_sections(
            [("params", run.params), ("fields", run.fields), ("state", run.state), ("config", doc.config if doc else {})],
            expand=("params", "fields", "state", "config"),
        )
        exception.update(exception_content(run))

    def _apply_steps(self, views: Sequence[StepView]) -> None:
        container = self.query_one("#step-list", VerticalScroll)
        panels = list(container.query_children(StepSource))
        if panels and len(panels) == len(views):
            for panel, view in zip(panels, views):
                panel.update(view)
            return
        if not views and not panels and container.query_children(".empty-note"):
            return
        container.remove_children()
        if views:
            container.mount_all([StepSource(view) for view in views])
        else:
            container.mount(Static(Content.styled("no steps recorded", f"italic {MUTED}"), classes="empty-note"))

    # -- interaction ------------------------------------------------------------
    @on(Input.Changed, "#run-filter")
    def _filter_runs(self, event: Input.Changed) -> None:
        self.query_one(RunTable).set_filter(event.value)
        self._update_run_count()

    @on(Input.Submitted, "#run-filter")
    def _filter_done(self) -> None:
        self.query_one(RunTable).focus()

    @on(RunTable.RowChosen, "#run-table")
    async def _open_run(self, event: RunTable.RowChosen) -> None:
        snap = self.snapshot
        run_id = str(event.key)
        if snap is None or snap.run(run_id) is None:
            return
        self.selected_run = run_id
        await self.show_section(Section.RUN)
        self._render_run_detail()

    @on(Input.Changed, "#raw-search")
    def _search_raw(self, event: Input.Changed) -> None:
        self.query_one(RawJsonView).search(event.value)

    @on(Input.Submitted, "#raw-search")
    def _next_raw_match(self) -> None:
        self.query_one(RawJsonView).action_next_match()

    @on(RawJsonView.SearchMoved)
    def _show_match(self, event: RawJsonView.SearchMoved) -> None:
        label = self.query_one("#raw-matches", Static)
        if not event.view.query:
            label.update("")
        elif not event.count:
            label.update(Content.styled("no matches", "$text-warning"))
        else:
            line, _ = event.view.current_match or (0, 0)
            label.update(f"{(event.index or 0) + 1}/{event.count:,}  line {line + 1:,}")

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        self._start_load(force=True)

    async def action_show_section(self, number: int) -> None:
        sections = list(Section)
        if 1 <= number <= len(sections):
            await self.show_section(sections[number - 1])

    async def action_find(self) -> None:
        """``/``: the runs filter, or the raw search on the Raw tab (or when there are no runs)."""
        active = self.query_one(TabbedContent).active
        shown = self._shown or set()
        if Section.RUNS in shown and (active == Section.RUNS.value or active != Section.RAW.value):
            await self.show_section(Section.RUNS)
            self.query_one("#run-filter", Input).focus()
        elif Section.RAW in shown:
            await self.show_section(Section.RAW)
            self.query_one("#raw-search", Input).focus()


__all__ = [
    "Extras",
    "InspectorScreen",
    "ResumeCommand",
    "Section",
    "Snapshot",
    "VerdictProvider",
    "function_source",
    "read_snapshot",
]
