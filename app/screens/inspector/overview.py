"""The Overview tab's sections: owner verdict, resume command, every top-level field, the file.

Short values are shown inline; big ones (runs, processes, steps, history)
are summarised with a pointer to the tab that shows them. A file that does
not parse gets its reason and the first lines of its bytes instead.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from textual.content import Content

from app.screens.inspector.styles import MUTED, STATUS_STYLE, VERDICT_STYLE, status_content
from state.inspection import Extras, Snapshot, display_path, local_time
from state.lem_study import StudyEntry, StudyManifest
from state.durations import duration
from widgets.overview_panel import OverviewSection
from widgets.run_table import format_value, printable


def _when(value: datetime, now: datetime) -> Content:
    aware = value if value.tzinfo else value.astimezone()
    delta = (now - aware).total_seconds()
    age = f"{duration(delta)} ago" if delta >= 0 else f"in {duration(-delta)}"
    return Content.assemble(local_time(value), ("  (" + age + ")", MUTED))


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
    if name in ("runs", "steps") and isinstance(value, list):
        return Content.assemble(f"{len(value)} {name}", (f"   → {name.title()}", MUTED))
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
            bits.append(f"started {local_time(datetime.fromtimestamp(o.start_time).astimezone())}")
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
    if extras is not None and (extras.shared or extras.shared_error):
        sections.append(shared_section(extras))
    if isinstance(model, StudyManifest):
        sections += study_sections(model, snap)
    sections.append(OverviewSection("Experiment", tuple((label.get(n, n), v) for n, v in fields)))
    sections.append(OverviewSection("File", tuple(file_rows)))
    return sections


#: Keys of ``run.shared`` listed in the Overview; ``expwatch kv ID`` prints them all.
SHARED_ROWS = 40


def shared_section(extras: Extras) -> OverviewSection:
    """The experiment's ``run.shared`` map, one key a row (long values cut)."""
    rows: list[tuple[str, Content | str]] = []
    for key, value in extras.shared[:SHARED_ROWS]:
        text = "null" if value is None else format_value(value)
        rows.append((printable(key), text if len(text) <= 200 else text[:199] + "…"))
    if len(extras.shared) > SHARED_ROWS:
        rows.append(("…", Content.styled(f"{len(extras.shared) - SHARED_ROWS} more: expwatch kv ID", MUTED)))
    note = Content.styled(f"✖ {extras.shared_error}", "bold $text-error") if extras.shared_error else None
    return OverviewSection("Shared run state (run.shared)", tuple(rows), note)


def _entry_line(entry: StudyEntry) -> str:
    parts = [entry.status, entry.config_summary]
    if entry.elapsed_seconds is not None:
        parts.append(f"{entry.elapsed_seconds:.1f} s")
    if entry.energy_joules is not None:
        parts.append(f"{entry.energy_joules:.1f} J")
    if entry.throughput_tok_s is not None:
        parts.append(f"{entry.throughput_tok_s:.1f} tok/s")
    if entry.error_type or entry.error_message:
        parts.append(f"{entry.error_type or 'error'}: {entry.error_message or ''}")
    return "  ·  ".join(parts)


def study_sections(model: StudyManifest, snap: Snapshot) -> list[OverviewSection]:
    """A study's entries (one line each) and the text of its failed entries' traceback files."""
    rows = tuple((f"#{i} cycle {e.cycle}", _entry_line(e)) for i, e in enumerate(model.experiments))
    sections = [OverviewSection(f"Entries ({len(rows)})", rows)]
    for tb in snap.tracebacks:
        body = tb.text if tb.text is not None else Content.styled(printable(f"unreadable: {tb.reason}"), "$text-error")
        sections.append(OverviewSection(printable(f"Traceback of #{tb.index} ({tb.log_file})"), note=body))
    return sections
