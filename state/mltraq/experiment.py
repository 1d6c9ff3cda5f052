"""An MLtraq experiment as expwatch shows it: a summary row, and the full model for the inspector.

MLtraq records no run status and no liveness. What the runs' own fields say is
shown: a non-empty ``error`` field fails a run, a ``status`` field is read by
its usual words (``ok``, ``done``, ``failed``...), and an experiment whose runs
have neither says "no status recorded" rather than guessing. The ``codelog``
field (MLtraq's ``codelog`` step: name, code, pathname, line) is the step source.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from state.mltraq.database import ExperimentRow, RunsTable, runs_table_name
from state.mltraq.decode import Opaque
from state.record import ExperimentRecord, FileVersion, StateFormat

FAILED_WORDS = frozenset({"failed", "failure", "fail", "error", "errored", "crashed", "exception", "aborted", "killed"})
DONE_WORDS = frozenset({"completed", "complete", "done", "ok", "success", "succeeded", "finished", "passed"})
RUNNING_WORDS = frozenset({"running", "started", "in progress", "in_progress"})
PENDING_WORDS = frozenset({"pending", "queued", "waiting", "created", "scheduled"})
NO_STATUS = "no status recorded"
STATUS_COLUMNS = ("id_run", "status", "error")
CODELOG_FIELD = "codelog"


def run_status(status: Any, error: Any) -> str | None:
    """``failed``/``completed``/``running``/``pending``, the status text as given, or None when neither field says."""
    if error not in (None, "", False, [], {}):
        return "failed"
    if isinstance(status, str) and status.strip():
        word = status.strip().lower()
        for words, verdict in ((FAILED_WORDS, "failed"), (DONE_WORDS, "completed"), (RUNNING_WORDS, "running"), (PENDING_WORDS, "pending")):
            if word in words:
                return verdict
        return status.strip()
    if status is True:
        return "completed"
    return None


def table_of(row: ExperimentRow) -> str:
    """The runs table the experiment's ``meta`` names, else the one MLtraq derives from its name."""
    runs = row.meta.get("runs") if isinstance(row.meta, dict) else None
    name = runs.get("table_name") if isinstance(runs, dict) else None
    return name if isinstance(name, str) and name else runs_table_name(row.name)


def expected_runs(row: ExperimentRow) -> int | None:
    """How many runs ``meta`` says the table will hold once ``persist()`` is done (None when it does not say)."""
    runs = row.meta.get("runs") if isinstance(row.meta, dict) else None
    count = runs.get("count") if isinstance(runs, dict) else None
    return count if type(count) is int else None


def fields_summary(fields: Any, limit: int = 60) -> str:
    """Short ``k=v`` text of an experiment's scalar fields, for the row's label."""
    if not isinstance(fields, Mapping):
        return str(fields)[:limit] if fields not in (None, {}) else ""
    parts = []
    for key, value in fields.items():
        if isinstance(value, (str, int, float, bool)) and not isinstance(value, Opaque):
            parts.append(f"{key}={value}")
        else:
            parts.append(str(key))
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary_record(
    path: Path,
    version: FileVersion | None,
    row: ExperimentRow,
    statuses: RunsTable,
    *,
    updated: datetime | None,
    note: str | None = None,
) -> ExperimentRecord:
    """The board's row for one experiment: run counts and a status from the ``status``/``error`` fields."""
    index = {c: i for i, c in enumerate(statuses.columns)}
    s_at, e_at = index.get("status"), index.get("error")
    done = failed = running = 0
    others: dict[str, int] = {}
    first_error: str | None = None
    exp_fields = row.fields if isinstance(row.fields, Mapping) else {}
    said = "status" in exp_fields or "error" in exp_fields
    for r in statuses.rows:
        status = r[s_at] if s_at is not None else None
        error = r[e_at] if e_at is not None else None
        verdict = run_status(status, error)
        if verdict is None:
            continue
        said = True
        if verdict == "failed":
            failed += 1
            if first_error is None and error not in (None, ""):
                first_error = str(error)
        elif verdict == "completed":
            done += 1
        elif verdict == "running":
            running += 1
        else:
            others[verdict] = others.get(verdict, 0) + 1
    total = len(statuses.rows)
    own = run_status(exp_fields.get("status"), exp_fields.get("error")) if said else None
    if not said:
        status, raw = "unknown", NO_STATUS
    elif own == "failed" or failed:
        status, raw = "failed", f"{failed} of {total} runs failed" if failed else "the experiment's fields say failed"
    elif running:
        status, raw = "running", f"{running} of {total} runs say running"
    elif own == "completed" or (total and done == total):
        status, raw = "completed", f"{done} of {total} runs completed"
    else:
        status = "unknown"
        raw = ", ".join(f"{n} {s}" for s, n in sorted(others.items())) or f"{done} of {total} runs say completed"
    if own not in (None, "failed", "completed", "running") and not failed:
        raw = f"experiment status {own}; {raw}"
    label = " ".join(p for p in (row.id_experiment[:8], fields_summary(row.fields)) if p)
    if note:
        label = f"{label} · {note}" if label else note
    return ExperimentRecord(
        key=row.name,
        path=path,
        format=StateFormat.MLTRAQ,
        experiment_id=row.name,
        status=status,
        version=version or FileVersion(0, 0, 0),
        name=label,
        raw_status=raw if not note else f"{raw}; {note}",
        runs_done=done,
        runs_failed=failed,
        runs_total=total,
        last_updated=updated,
        error_message=first_error,
    )


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class CodelogStep(_Model):
    """One step function as MLtraq's ``codelog`` recorded it."""

    name: str
    pathname: str | None = None
    lineno: int | None = None
    code: str | None = None
    runs: int = 1
    """How many runs recorded this same step."""


class MltraqRun(_Model):
    id_run: str
    index: int
    status: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    """Every column of the runs table but ``id_experiment`` and ``id_run``, decoded."""


class MltraqExperiment(_Model):
    """Everything an MLtraq database holds about one experiment (``unsafe_pickle`` excepted)."""

    experiment_id: str
    """The experiment's name (MLtraq's key for loading it)."""
    id_experiment: str
    status: str
    status_detail: str
    fields: Any = None
    runs_table: str
    columns: list[str] = Field(default_factory=list)
    """Every column ``PRAGMA table_info`` lists, in table order."""
    run_count: int = 0
    runs: list[MltraqRun] = Field(default_factory=list)
    steps: list[CodelogStep] = Field(default_factory=list)
    meta: Any = None
    note: str | None = None
    """Why the rows shown may not be the database's current ones (a table being rewritten)."""


def codelog_steps(runs: Iterable[MltraqRun]) -> list[CodelogStep]:
    """The distinct steps every run's ``codelog`` field lists, in first-seen order."""
    seen: dict[tuple[Any, ...], CodelogStep] = {}
    for run in runs:
        entries = run.fields.get(CODELOG_FIELD)
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            name, code = entry.get("name"), entry.get("code")
            pathname, line = entry.get("pathname"), entry.get("pathname_lineno")
            key = (name, pathname, line, code)
            if key in seen:
                seen[key].runs += 1
                continue
            seen[key] = CodelogStep(
                name=str(name) if name is not None else "?",
                pathname=str(pathname) if pathname is not None else None,
                lineno=line if type(line) is int else None,
                code=code if isinstance(code, str) and code != "NA" else None,
            )
    return list(seen.values())


def full_experiment(row: ExperimentRow, table: RunsTable, record: ExperimentRecord, note: str | None = None) -> MltraqExperiment:
    """The inspector's model: every run with every column of its table."""
    cols = table.columns
    id_at = cols.index("id_run") if "id_run" in cols else None
    kept = [(i, c) for i, c in enumerate(cols) if c not in ("id_run", "id_experiment")]
    runs = []
    for n, values in enumerate(table.rows):
        fields = {c: values[i] for i, c in kept}
        ident = values[id_at] if id_at is not None else None
        runs.append(MltraqRun.model_construct(
            id_run=str(ident) if ident is not None else f"#{n}",
            index=n,
            status=run_status(fields.get("status"), fields.get("error")),
            fields=fields,
        ))
    return MltraqExperiment.model_construct(
        experiment_id=row.name,
        id_experiment=row.id_experiment,
        status=record.status,
        status_detail=record.raw_status or "",
        fields=row.fields,
        runs_table=table.name,
        columns=list(cols),
        run_count=len(runs),
        runs=runs,
        steps=codelog_steps(runs),
        meta=row.meta,
        note=note,
    )


__all__ = [
    "CodelogStep",
    "MltraqExperiment",
    "MltraqRun",
    "NO_STATUS",
    "STATUS_COLUMNS",
    "codelog_steps",
    "expected_runs",
    "fields_summary",
    "full_experiment",
    "run_status",
    "summary_record",
    "table_of",
]
