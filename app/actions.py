"""The dashboard's side of the actions: plan in a worker, confirm, execute as planned.

Every action is planned once by runtime/ (the same code the CLI runs), shown in a
confirmation dialog, and executed with that plan: a record that changed since is
a conflict (an error notice, nothing written), never a silent re-plan. Refusals
the user should read (read-only, conflicts, a live owner) become notices; any
other exception is left to the App's one worker-failure handler.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work

from state.atomic import LockTimeout
from state.paths import UnsafePathError
from state.record import BrokenRecord, ExperimentRecord
from state.sources import MARK_STALE, RESUME, STOP, DirectorySource
from state.store import StoreError

if TYPE_CHECKING:
    from app.app import ExpwatchApp
    from app.screens.confirm import ConfirmDialog
    from runtime.actions import CleanupPlan, ResumePlan, StalePlan, StopPlan

# runtime.actions (the resume launcher, the stale rules) and the dialogs load on the first action,
# not with the dashboard: 30-40 ms and 13 ms of its start-up in the import profile.

RETRY_LABEL = "Also retry failed runs"

#: What a refused or failed action is expected to raise: shown as a notice, not as a failed worker.
EXPECTED = (StoreError, LockTimeout, PermissionError, UnsafePathError)


class ActionFlows:
    """Mixed into the App: resume, mark stale, stop and clean up from the keys."""

    def _chosen(self: ExpwatchApp, key: str, action: str) -> tuple[DirectorySource, ExperimentRecord] | None:
        if self.options.read_only:
            self.notify("read-only observer mode: nothing can be changed", severity="warning")
            return None
        found = self.source_of(key)
        if found is None:
            return None
        source, entry = found
        if source in self.hubs and isinstance(entry, ExperimentRecord) and action in source.allowed_actions(entry):
            self.request_remote(source, entry, action)  # asked of the record's host agent
            return None
        if not isinstance(source, DirectorySource):
            self.notify(f"{source.name} is read-only: {action.replace('_', ' ')} runs on the host that holds it", severity="warning")
            return None
        if isinstance(entry, BrokenRecord):
            self.notify(f"{entry.key} is unreadable: {entry.reason}", severity="error")
            return None
        if action not in source.allowed_actions(entry):
            self.notify(f"{source.name} does not allow {action.replace('_', ' ')} for {entry.experiment_id}", severity="warning")
            return None
        return source, entry

    def _confirm(
        self: ExpwatchApp, dialog: ConfirmDialog, then: Callable[[], Any], alternative: Callable[[], Any] | None = None
    ) -> None:
        """Push ``dialog`` from a worker thread; ``then`` runs (on the UI thread) only on yes,
        ``alternative`` only on the dialog's second button."""

        from app.screens.confirm import ALTERNATIVE, CONFIRM

        def confirmed(choice: str | None) -> None:
            if choice == CONFIRM:
                then()
            elif choice == ALTERNATIVE and alternative is not None:
                alternative()

        self.call_from_thread(self.push_screen, dialog, confirmed)

    def _refused(self: ExpwatchApp, what: str, exc: BaseException) -> None:
        self.call_from_thread(self.notify, f"{what}: {exc}", severity="error", timeout=8)

    def _done(self: ExpwatchApp, text: str, journal_error: str | None) -> None:
        """What an action did (from a worker thread); a journal line it could not write, as a warning."""
        if journal_error is None:
            self.call_from_thread(self.notify, text, timeout=8)
        else:
            self.call_from_thread(self.notify, f"{text} (done, but {journal_error})", severity="warning", timeout=12)

    # -- resume --------------------------------------------------------------------------------
    def request_resume(self: ExpwatchApp, key: str) -> None:
        chosen = self._chosen(key, RESUME)
        if chosen is not None:
            self._plan_resume(*chosen)

    def resume_command_text(self: ExpwatchApp, source: DirectorySource, ident: str) -> str:
        """The command a resume would run, for the inspector (reads the file: worker threads only)."""
        from runtime import actions

        plan = actions.plan_resume(source.store, ident, template=self.options.resume_template, probe=self.probe)
        return " ".join(plan.argv) + f"   (in {plan.cwd})"

    @work(thread=True, group="action", exit_on_error=False, description="plan a resume")
    def _plan_resume(self: ExpwatchApp, source: DirectorySource, record: ExperimentRecord) -> None:
        """Plan the resume, and where it would leave failed runs as failed, the resume that
        retries them too: the dialog offers both (or only the retry when nothing else is left)."""
        from app.screens.confirm import Alternative, ConfirmDialog
        from runtime import actions

        template = self.options.resume_template
        try:
            with source.exclusive() as store:
                plan = actions.plan_resume(store, record.key, template=template, probe=self.probe)
                retry = None
                if plan.runs_failed_kept:
                    retry = actions.plan_resume(store, record.key, template=template, probe=self.probe, retry_failed=True)
        except EXPECTED as exc:
            self._refused(f"cannot resume {record.experiment_id}", exc)
            return
        if retry is not None and retry.allowed and not plan.allowed:
            plan, retry = retry, None  # nothing but the failed runs is left: retrying them is the resume
        offer = retry if retry is not None and retry.allowed else None
        hint = f"{RETRY_LABEL} (f) reruns them" if offer else "--retry-failed reruns them"
        label = "Resume, retrying failed runs" if plan.retry_failed else "Resume"
        dialog = ConfirmDialog(
            f"Resume {record.experiment_id}?",
            plan.describe(refusal=False, retry_hint=hint, base=Path.cwd()),
            confirm_label=label,
            refusal=None if plan.allowed else plan.refusal,
            alternative=Alternative(RETRY_LABEL) if offer else None,
        )
        self._confirm(
            dialog,
            lambda: self._do_resume(source, plan),
            (lambda: self._do_resume(source, offer)) if offer else None,
        )

    @work(thread=True, group="action", exit_on_error=False, description="resume")
    def _do_resume(self: ExpwatchApp, source: DirectorySource, plan: ResumePlan) -> None:
        from runtime import actions

        try:
            with source.exclusive() as store:
                result = actions.execute_resume(store, plan, probe=self.probe)
        except EXPECTED as exc:
            self._refused("resume refused", exc)
            return
        self._done(f"resumed {plan.experiment_id}: pid {result.pid}, log {result.log_path}", result.journal_error)
        self.reconcile_now(source)

    # -- mark stale ----------------------------------------------------------------------------
    def request_mark_stale(self: ExpwatchApp, key: str) -> None:
        chosen = self._chosen(key, MARK_STALE)
        if chosen is not None:
            self._plan_mark_stale(*chosen)

    @work(thread=True, group="action", exit_on_error=False, description="plan mark-stale")
    def _plan_mark_stale(self: ExpwatchApp, source: DirectorySource, record: ExperimentRecord) -> None:
        from app.screens.confirm import ConfirmDialog
        from runtime import actions

        try:
            with source.exclusive() as store:
                plan = actions.plan_mark_stale(store, record.key, probe=self.probe, now=self.clock())
        except EXPECTED as exc:
            self._refused(f"cannot mark {record.experiment_id} stale", exc)
            return
        dialog = ConfirmDialog(
            f"Mark {record.experiment_id} stale?",
            plan.describe(refusal=False),
            confirm_label="Mark stale",
            refusal=plan.refusal,
        )
        self._confirm(dialog, lambda: self._do_mark_stale(source, plan))

    @work(thread=True, group="action", exit_on_error=False, description="mark stale")
    def _do_mark_stale(self: ExpwatchApp, source: DirectorySource, plan: StalePlan) -> None:
        from runtime import actions

        try:
            with source.exclusive() as store:
                result = actions.execute_mark_stale(store, plan)
        except EXPECTED as exc:
            self._refused("mark stale refused", exc)
            return
        self._done(f"{result.experiment_id}: {result.from_status} → {result.to_status}", result.journal_error)
        self.reconcile_now(source)

    # -- stop ------------------------------------------------------------------------------------
    def request_stop(self: ExpwatchApp, key: str) -> None:
        chosen = self._chosen(key, STOP)
        if chosen is not None:
            self._plan_stop(*chosen)

    @work(thread=True, group="action", exit_on_error=False, description="plan a stop")
    def _plan_stop(self: ExpwatchApp, source: DirectorySource, record: ExperimentRecord) -> None:
        from app.screens.confirm import ConfirmDialog
        from runtime import actions

        try:
            with source.exclusive() as store:
                plan = actions.plan_stop(store, record.key, probe=self.probe, now=self.clock())
        except EXPECTED as exc:
            self._refused(f"cannot stop {record.experiment_id}", exc)
            return
        label = "Terminate (SIGTERM)" if plan.signum is not None and plan.signum.name == "SIGTERM" else "Stop"
        dialog = ConfirmDialog(f"Stop {record.experiment_id}?", plan.describe(), confirm_label=label, refusal=plan.refusal)
        self._confirm(dialog, lambda: self._do_stop(source, plan))

    @work(thread=True, group="action", exit_on_error=False, description="stop")
    def _do_stop(self: ExpwatchApp, source: DirectorySource, plan: StopPlan) -> None:
        from runtime import actions

        try:
            with source.exclusive() as store:
                result = actions.execute_stop(store, plan, probe=self.probe)
        except EXPECTED as exc:
            self._refused("stop refused", exc)
            return
        after = "it stops at a run boundary" if result.signum.name == "SIGINT" else "its workers are terminated now"
        self.call_from_thread(
            self.notify, f"{result.signum.name} sent to {result.experiment_id} (pid {result.pid}): {after}",
            timeout=8, markup=False,
        )
        self.reconcile_now(source)

    # -- clean up ---------------------------------------------------------------------------------
    def request_cleanup(self: ExpwatchApp) -> None:
        if self.options.read_only:
            self.notify("read-only observer mode: nothing can be changed", severity="warning")
            return
        # The board's records, taken on the UI thread: the plan judges them and reads no directory.
        records = [
            (source, self.board.records_of(source.name))
            for source in self.sources
            if isinstance(source, DirectorySource) and not source.read_only
        ]
        self._plan_cleanup(records)

    @work(thread=True, group="action", exit_on_error=False, description="plan clean-up")
    def _plan_cleanup(self: ExpwatchApp, records: list[tuple[DirectorySource, tuple[ExperimentRecord, ...]]]) -> None:
        from app.screens.confirm import ConfirmDialog
        from runtime import actions

        now = self.clock()
        plans = [(source, actions.plan_cleanup(recs, probe=self.probe, now=now)) for source, recs in records]
        plans = [(source, plan) for source, plan in plans if plan]
        lines: list[str] = []
        for source, plan in plans:
            prefix = f"{source.name}: " if len(self.sources) > 1 else ""
            lines += [prefix + line for line in plan.describe()]
        total = sum(len(plan) for _, plan in plans)
        if not total:
            self.call_from_thread(self.notify, f"nothing to clean up: {actions.NOTHING_STALE}")
            return
        dialog = ConfirmDialog(
            f"Mark {total} stale experiment{'s' if total != 1 else ''} interrupted?", lines, confirm_label="Clean up"
        )
        self._confirm(dialog, lambda: self._do_cleanup(plans))

    @work(thread=True, group="action", exit_on_error=False, description="clean up stale experiments")
    def _do_cleanup(self: ExpwatchApp, plans: list[tuple[DirectorySource, CleanupPlan]]) -> None:
        from runtime import actions

        done = skipped = 0
        reasons: list[str] = []
        for source, plan in plans:
            try:
                with source.exclusive() as store:
                    result = actions.execute_cleanup(store, plan)
            except EXPECTED as exc:
                self._refused("clean up refused", exc)
                continue
            done += len(result.done)
            skipped += len(result.skipped)
            reasons += [f"{s.plan.experiment_id}: {s.reason}" for s in result.skipped]
            self.reconcile_now(source)
        text = f"marked {done} experiment(s) interrupted"
        if skipped:
            text += f"; {skipped} left as they were ({'; '.join(reasons[:3])})"
        self.call_from_thread(self.notify, text, severity="warning" if skipped else "information", timeout=8)


__all__ = ["ActionFlows"]
