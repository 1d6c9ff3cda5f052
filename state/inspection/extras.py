"""The slower half of a load: the owner's verdict, the resume command, step checks, history, shared state.

They change without the experiment file changing (a process dies, someone
edits the study, the journal grows), so they are re-read on their own
schedule. The verdict and the resume command come from runtime/, which
state/ must not import: the caller passes them in as callables, and a
callable that raises becomes a reason shown, never a failed read.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from state.inspection.display import display_path
from state.inspection.history import HistoryReader, HistoryRow
from state.inspection.snapshot import Snapshot
from state.inspection.steps import StepChecker, StepView
from state.record import ExperimentRecord, FileVersion
from state.shared import SharedStateError, read_shared
from state.store import StateStore
from state.verdict import StaleVerdict

VerdictProvider = Callable[[ExperimentRecord], StaleVerdict]
ResumeCommand = Callable[[str], str]


@dataclass(frozen=True)
class Extras:
    """What was judged and read beside one version of the file."""

    version: FileVersion | None
    verdict: StaleVerdict | None
    verdict_error: str | None
    resume: str | None
    resume_error: str | None
    steps: tuple[StepView, ...]
    history: tuple[HistoryRow, ...]
    shared: tuple[tuple[str, object], ...] = ()
    """The experiment's ``run.shared`` map (``state.shared``), keys sorted."""
    shared_error: str | None = None


class ExtrasReader:
    """Reads ``Extras`` for snapshots of one store, with caches keyed by file version.

    Used by one worker at a time.
    """

    def __init__(self, store: StateStore, verdict_provider: VerdictProvider | None, resume_command: ResumeCommand | None):
        self.store = store
        self.verdict_provider = verdict_provider
        self.resume_command = resume_command
        self.steps = StepChecker(self.base)
        self.history = HistoryReader(store)

    @property
    def base(self) -> Path:
        """The project directory: the one holding the state directory."""
        return Path(os.path.abspath(self.store.root)).parent

    def read(self, snap: Snapshot) -> Extras:
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
        steps = self.steps.step_views(snap.doc, verdict) if snap.doc is not None else ()
        history = self.history.history(snap) if snap.model is not None else ()
        shared: tuple[tuple[str, object], ...] = ()
        shared_error = None
        if snap.doc is not None:
            try:
                values = read_shared(self.store.root, snap.key, snap.doc.experiment_id)
                shared = tuple(sorted(values.items()))
            except SharedStateError as exc:
                shared_error = str(exc)
        return Extras(snap.version, verdict, verdict_error, resume, resume_error, steps, history, shared, shared_error)
