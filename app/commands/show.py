"""``expwatch show ID``: one experiment in full (status, verdict, processes, failures, history)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from app.commands._common import age_of, open_sources, open_store, store_errors, table
from app.commands._list_json import record_json
from state.inspection.study import study_tracebacks
from state.lem_study import StudyManifest
from state.native import ExperimentDoc, RunStatus
from state.text import printable

NAME = "show"
HELP = "show one experiment: status, owner verdict, processes, failed runs, history"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="experiment id or file name (without .json)")
    parser.add_argument("--json", action="store_true", help="the summary, the verdict and the state file as JSON")


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _native_lines(doc: ExperimentDoc) -> list[str]:
    lines: list[str] = []
    pending = sum(1 for r in doc.runs if r.status in (RunStatus.PENDING, RunStatus.RUNNING))
    lines.append(f"study        {doc.study_path or '-'}")
    if doc.config:
        lines.append(f"config       {json.dumps(doc.config, default=str)}")
    if doc.grid:
        axes = ", ".join(f"{k}: {len(v)}" for k, v in doc.grid.items())
        lines.append(f"grid         {axes}")
    lines.append(f"pending      {pending}")
    if doc.resume is not None:
        lines.append(f"resume with  {' '.join(doc.resume.argv)}  (in {doc.resume.cwd})")
    if doc.processes:
        lines.append("")
        rows = [["PROC", "STATUS", "GPU", "PID", "RUNS", "CURRENT", "HEARTBEAT", "ERROR"]]
        for _, p in sorted(doc.processes.items(), key=lambda kv: kv[1].process_index):
            current = f"{p.current_run} / {p.current_step}" if p.current_run else "-"
            rows.append([
                str(p.process_index),
                p.status.value,
                "-" if p.gpu_id is None else str(p.gpu_id),
                str(p.owner.pid) if p.owner else "-",
                f"{p.runs_done}/{p.runs_total}" + (f" ({p.runs_failed} failed)" if p.runs_failed else ""),
                current,
                age_of(p.heartbeat_at),
                p.error_message or "",
            ])
        lines += table(rows).splitlines()
    failed = [r for r in doc.runs if r.status is RunStatus.FAILED]
    if failed:
        lines.append("")
        lines.append(f"failed runs ({len(failed)}):")
        for rec in failed[:20]:
            exc = rec.exception
            where = f" in step {rec.current_step}" if rec.current_step else ""
            lines.append(f"  {rec.id_run} {json.dumps(rec.params, default=str)}{where}: "
                         f"{exc.type if exc else '?'}: {exc.message if exc else ''}")
        if len(failed) > 20:
            lines.append(f"  ... and {len(failed) - 20} more")
        first = failed[0].exception
        if first is not None and first.traceback:
            lines.append("")
            lines.append(f"traceback of run {failed[0].id_run}:")
            lines += ["  " + line for line in first.traceback.rstrip().splitlines()]
    if doc.history:
        lines.append("")
        lines.append("history:")
        for h in doc.history:
            src = h.from_status.value if h.from_status else "-"
            lines.append(f"  {_when(h.at)}  {src} -> {h.to.value}  by {h.who}" + (f": {h.why}" if h.why else ""))
    return lines


def _study_lines(model: StudyManifest, study_dir: Path) -> list[str]:
    """A study's entries, then its failed entries' tracebacks (read inside the study folder only)."""
    rows = [["#", "CYCLE", "STATUS", "CONFIG", "ENERGY", "TOK/S", "ERROR"]]
    for i, e in enumerate(model.experiments):
        rows.append([
            str(i), str(e.cycle), e.status, e.config_summary,
            "-" if e.energy_joules is None else f"{e.energy_joules:.1f} J",
            "-" if e.throughput_tok_s is None else f"{e.throughput_tok_s:.1f}",
            ": ".join(x for x in (e.error_type, e.error_message) if x),
        ])
    lines = [f"design hash  {model.study_design_hash}", "", *table(rows).splitlines()]
    for tb in study_tracebacks(study_dir, model):
        lines += ["", f"traceback of #{tb.index} ({tb.log_file}):"]
        lines += ["  " + line for line in (tb.text or f"(unreadable: {tb.reason})").rstrip().splitlines()]
    return lines


def _reader_key(source: Any, ident: str) -> str:
    """The row key of ``ident`` (a key, an experiment id, or a hub row's file key) in a scanned source."""
    from app.cli import CommandError
    from runtime.exit_codes import EXIT_ERROR, EXIT_NOT_FOUND

    entries = source.entries()
    if ident in entries and not entries[ident].broken:
        return ident
    matches = sorted(
        k for k, e in entries.items() if not e.broken and ident in (e.experiment_id, k.rsplit("/", 1)[-1])
    )
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise CommandError(f"several experiments are called {ident!r}: {', '.join(matches)}; give one of these keys",
                           EXIT_NOT_FOUND)
    whole = Path(source.location).name  # an unreadable database is one broken row named after it
    for k, e in entries.items():
        if e.broken and k in (ident, whole):
            raise CommandError(f"cannot read {ident if k == ident else source.location}: {e.reason}", EXIT_ERROR)
    raise CommandError(f"no experiment {ident!r} in {source.location}", EXIT_NOT_FOUND)


def _show_from_reader(args: argparse.Namespace, source: Any) -> int:
    """A source that is not a state directory (an MLtraq database, a hub): its inspector's read, as JSON or lines."""
    from app.cli import CommandError
    from runtime.exit_codes import EXIT_ERROR
    from state.hub.connection import HubError

    try:
        source.reconcile()  # the rows, as `list` reads them: a hub's are only known from a scan
    except HubError as exc:
        raise CommandError(str(exc), EXIT_ERROR) from None
    key = _reader_key(source, args.id)
    reader = source.snapshot_reader()
    try:
        snap = reader.read(key)
    finally:
        if (close := getattr(reader, "close", None)) is not None:
            close()
    if snap.model is None or snap.record is None:
        raise CommandError(f"cannot read {args.id}: {snap.reason or 'no state'}", EXIT_ERROR)
    record = snap.record
    if args.json:
        print(json.dumps({**record_json(record, None), "state": snap.model.model_dump(mode="json")}, indent=2, default=str))
        return 0
    model = snap.model
    lines = [
        f"experiment   {record.experiment_id}  ({getattr(model, 'id_experiment', '')})",
        f"format       {record.format.value}",
        f"status       {record.status} [{record.raw_status}]",
        f"file         {record.path}",
        f"runs         {record.runs_done} completed, {record.runs_failed} failed, {record.runs_total} total",
    ]
    if record.error_message:
        lines.append(f"error        {printable(record.error_message)}")
    for step in getattr(model, "steps", []):
        lines.append(f"step         {step.name}  {step.pathname}:{step.lineno}")
    print("\n".join(lines))
    return 0


def run(args: argparse.Namespace) -> int:
    from runtime.actions import load_experiment, verdict_for

    first = open_sources(args)[0]
    if hasattr(first, "snapshot_reader"):
        return _show_from_reader(args, first)
    store = open_store(args, read_only=True)
    with store_errors():
        loaded, record = load_experiment(store, args.id)
    verdict = verdict_for(record)
    if args.json:
        state: Any = loaded.model.model_dump(mode="json", by_alias=True)
        out = {**record_json(record, verdict), "state": state}
        print(json.dumps(out, indent=2, default=str))
        return 0
    lines = [
        f"experiment   {printable(record.experiment_id)}" + (f"  ({printable(record.name)})" if record.name else ""),
        f"format       {record.format.value}",
        f"status       {record.status}" + (f" [{record.raw_status}]" if record.raw_status not in (None, record.status) else ""),
        (f"owner        {verdict.liveness.value}: {verdict.reason}"
         if record.status in ("running", "initialised") or verdict.is_alive
         else f"owner        none running ({verdict.reason})"),
        f"file         {record.path}",
    ]
    if record.runs_total or record.runs_done:
        lines.append(f"runs         {record.runs_done} completed, {record.runs_failed} failed, {record.runs_total} total")
    if record.format.value == "expwatch-1":
        lines.append(f"attempt      {record.attempt}")
    lines.append(f"started      {_when(record.started_at)}")
    lines.append(f"updated      {_when(record.last_updated)} ({age_of(record.last_updated)} ago)")
    if record.finished_at:
        lines.append(f"finished     {_when(record.finished_at)}")
    if record.energy_joules is not None:
        lines.append(f"GPU energy   {record.energy_joules:.1f} J")
    if record.log_path:
        lines.append(f"log          {record.log_path}")
    if record.error_message:
        lines.append(f"error        {printable(record.error_message)}")
    model = loaded.model
    if isinstance(model, ExperimentDoc):
        lines += _native_lines(model)
    elif isinstance(model, StudyManifest):
        lines += _study_lines(model, record.path.parent)
    else:
        lines.append(f"pid          {record.legacy_pid if record.legacy_pid is not None else '-'}")
        if record.config_hash:
            lines.append(f"config hash  {record.config_hash}")
    print("\n".join(lines))
    return 0
