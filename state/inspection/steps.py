"""An experiment's steps compared with the study files on disk now.

The source recorded at start is what the runs executed; if someone edits the
study while it runs, the function's text on disk no longer matches the
recorded hash, and the reader should see that before resuming.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from state.hashing import source_hash
from state.inspection.display import display_path
from state.inspection.processes import process_rows
from state.native import ExperimentDoc, StepInfo
from state.process_state import shown_process_status
from state.record import FileVersion
from state.sidecar import read_regular
from state.verdict import StaleVerdict

#: Study files larger than this are not read to compare step sources.
MAX_SOURCE_BYTES = 4 * 1024 * 1024


class SourceCheck(str, Enum):
    """How the function on disk compares with the source recorded at start."""

    SAME = "same"
    CHANGED = "changed"
    MISSING = "missing"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class StepView:
    """What one step panel shows; built in a worker from a ``StepInfo`` and the file on disk."""

    name: str
    qualname: str
    location: str
    """Where the function is, for display (a path relative to the project, and the line)."""
    source: str | None
    first_line: int
    running_in: tuple[str, ...] = ()
    """Who is in this step now (with a live verdict), e.g. ``process 0 (run r-0003)``."""
    last_in: tuple[str, ...] = ()
    """Processes whose last recorded step this is but which are not proven running, e.g. ``process 1 (dead)``."""
    check: SourceCheck = SourceCheck.UNKNOWN
    check_detail: str = ""


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


class StepChecker:
    """Step views for a document, re-reading a study file only when its version changes.

    Relative step files are looked for in the resume directory, then in
    ``base`` (the project: the directory holding the state directory).
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self._sources: dict[Path, tuple[FileVersion, str | None, str]] = {}

    def _file_text(self, path: Path) -> tuple[str | None, str]:
        """(text, why not) of a study file."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None, "missing"
        except OSError as exc:
            return None, exc.strerror or str(exc)
        version = FileVersion(st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._sources.get(path)
        if cached and cached[0] == version:
            return cached[1], cached[2]
        result: tuple[str | None, str]
        try:
            # Named by the file: a device (/dev/zero), a FIFO or a giant is refused, never read whole.
            data, _ = read_regular(path, MAX_SOURCE_BYTES)
            if len(data) > MAX_SOURCE_BYTES:
                result = (None, "file too large to compare")
            else:
                result = (data.decode("utf-8"), "")
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

    def step_views(self, doc: ExperimentDoc, verdict: StaleVerdict | None = None) -> tuple[StepView, ...]:
        """One view per step; a process is "running here" only with a live verdict on it."""
        cwd = Path(doc.resume.cwd) if doc.resume else self.base
        here: dict[str, list[str]] = {}
        last: dict[str, list[str]] = {}
        for row in process_rows(doc):
            if not row.current_step:
                continue
            shown = shown_process_status(row, experiment_status=doc.status.value, verdict=verdict)
            if shown == "running":
                label = f"process {row.index}" + (f" (run {row.current_run})" if row.current_run else "")
                here.setdefault(row.current_step, []).append(label)
            else:
                last.setdefault(row.current_step, []).append(f"process {row.index} ({shown})")
        views = []
        for step in doc.steps:
            check, detail = self.check_step(step, cwd)
            running = tuple(here.get(step.name, []) or here.get(step.qualname, []))
            stopped = tuple(last.get(step.name, []) or last.get(step.qualname, []))
            location = display_path(step.file, self.base) if step.file else "(no file)"
            if step.line is not None:
                location += f":{step.line}"
            views.append(
                StepView(step.name, step.qualname, location, step.source, step.line or 1, running, stopped, check, detail)
            )
        return tuple(views)
