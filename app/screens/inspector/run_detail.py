"""The Run tab's text: one run's header line and its exception with the traceback highlighted."""

from __future__ import annotations

from textual.content import Content
from textual.highlight import highlight

from app.screens.inspector.styles import MUTED, status_content
from state.inspection import local_time
from state.mltraq.experiment import MltraqRun
from state.native import RunRecord


def run_header(run: RunRecord | MltraqRun, running_as: str | None = None) -> Content:
    """The run's id, status and where it ran; ``running_as`` is what a run the file calls running
    is shown as while its experiment's owner is not proven alive (as the Runs table shows it)."""
    if isinstance(run, MltraqRun):
        status = status_content(run.status) if run.status else Content.styled("no status recorded", MUTED)
        return Content.assemble(("run ", MUTED), (run.id_run, "bold"), ("  #", MUTED), str(run.index), "  ", status)
    parts: list[Content | str | tuple[str, str]] = [
        ("run ", MUTED), (run.id_run, "bold"), ("  #", MUTED), str(run.index), "  ",
        Content.styled(running_as, "bold $text-warning")
        if running_as is not None and run.status.value == "running"
        else status_content(run.status.value),
        ("  attempt ", MUTED), str(run.attempt),
    ]
    if run.process_index is not None:
        parts += [("  process ", MUTED), str(run.process_index)]
    if run.current_step:
        parts += [("  step ", MUTED), run.current_step]
    if run.started_at:
        parts += [("\nstarted ", MUTED), local_time(run.started_at)]
    if run.completed_at:
        parts += [("  finished ", MUTED), local_time(run.completed_at)]
    return Content.assemble(*parts)


def exception_content(run: RunRecord | MltraqRun) -> Content:
    if isinstance(run, MltraqRun):
        error = run.fields.get("error")
        if error in (None, ""):
            return Content.styled("no error field (MLtraq does not record exceptions)", f"italic {MUTED}")
        return Content.assemble(("error field", "bold $text-error"), ": ", str(error))
    exc = run.exception
    if exc is None:
        return Content.styled("no exception", f"italic {MUTED}")
    head = Content.assemble((exc.type, "bold $text-error"), ": ", exc.message)
    if not exc.traceback.strip():
        return head
    return Content.assemble(head, "\n\n", highlight(exc.traceback.rstrip("\n"), language="pytb"))
