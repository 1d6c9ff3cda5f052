"""The dashboard's actions on another host's experiments: asked of that host's agent through the hub.

The same three steps as a local action (plan, confirm, execute as planned), each
step a request on the host's action stream (``state.hub.actions``), planned and
executed there by ``runtime.agent_actions`` with the CLI's code. The dialog shows
the host's plan; the notice says what the host answered, or that no answer came
in time, and then the answer that comes later (an agent that read the request in
time finishes it). A host with no live agent is refused before anything is sent:
a dialog shows the command to run on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work

from state.durations import duration
from state.record import ExperimentRecord

if TYPE_CHECKING:
    # The hub's modules (and redis) load only when a hub row is acted on: a dashboard without a
    # hub never pays for them at start-up.
    from state.hub.actions import ActionAnswer
    from state.sources.hub import HubSource

    from app.app import ExpwatchApp


def agent_command(source: HubSource, host: str, locations: list[str]) -> str:
    """What to run on ``host`` for its experiments to take actions again."""
    where = " ".join(locations) if locations else "STATE_DIR"
    return f"expwatch agent --hub {source.hub.address.shown} --host-name {host} {where}"


class RemoteActionFlows:
    """Mixed into the App beside ``ActionFlows``: resume, mark stale and stop on a hub's rows."""

    def request_remote(self: ExpwatchApp, source: HubSource, record: ExperimentRecord, action: str) -> None:
        self._remote_plan(source, record, action)

    def _ask(self: ExpwatchApp, source: HubSource, record: ExperimentRecord, action: str, mode: str, plan_id: str | None = None) -> ActionAnswer | None:
        """One request to the record's host, answered (None: refused or unanswered here, with a notice said)."""
        from state.hub.actions import ActionRequest, new_id
        from state.hub.connection import HubError
        from state.sources.hub import ACTION_WAIT_S

        target = source.target(record)
        if target is None:
            self._refused(f"cannot {action.replace('_', ' ')} {record.experiment_id}", ValueError("no host in its key"))
            return None
        host, name, key = target
        what = f"{action.replace('_', ' ')} {record.experiment_id} on {host}"
        try:
            lease = source.lease_of(host)
            if lease is None or not lease.alive:
                self._no_agent(source, record, action, host, lease.silent_s if lease is not None else None)
                return None
            request = ActionRequest(new_id(), action, mode, name, key, source.actions.now_ms() + int(ACTION_WAIT_S * 1000), plan_id)
            answer = source.actions.ask(host, request, ACTION_WAIT_S + 2)
        except HubError as exc:
            self._refused(f"cannot {what}", exc)
            return None
        if answer is None:
            self.call_from_thread(
                self.notify, f"{what}: no answer from its agent in {ACTION_WAIT_S:.0f} s (an answer that comes later is shown)",
                severity="error", timeout=12,
            )
            self.call_from_thread(self._late_answer, source, request.id, what)
            return None
        if not answer.ok:
            self.call_from_thread(self.notify, answer.text, severity="error", timeout=12)
            return None
        return answer

    def _no_agent(self: ExpwatchApp, source: HubSource, record: ExperimentRecord, action: str, host: str, silent_s: float | None) -> None:
        """Refused before anything is sent: a dialog with the command that starts the host's agent (it stays to be copied)."""
        from app.screens.confirm import ConfirmDialog

        silent = f"silent for {duration(silent_s)}" if silent_s is not None else "never seen"
        command = agent_command(source, host, source.actions.agent_sources(host))
        dialog = ConfirmDialog(
            f"{action.replace('_', ' ').capitalize()} {record.experiment_id} on {host}",
            [f"Actions on {host}'s experiments are done by its agent. Run this there:", "", f"  {command}", "", "then ask again."],
            refusal=f"no agent alive on {host} ({silent})",
        )
        self.call_from_thread(self.push_screen, dialog)

    @work(thread=True, group="late-answer", exit_on_error=False, description="wait for a late answer")
    def _late_answer(self: ExpwatchApp, source: HubSource, request_id: str, what: str) -> None:
        """An answer that comes after the wait ended is shown, not dropped (the host may well have done it)."""
        from state.hub.connection import HubError

        try:
            answer = source.actions.late_answer(request_id, self._stop_thread)
        except HubError:
            return  # the hub's loss is said by its source; the answer stays on the record
        if answer is None:
            return
        text = "its plan came after the wait ended; nothing was done: ask again" if answer.ok and answer.plan_id else answer.text
        severity = "information" if answer.ok and not answer.warning else "warning"
        self.call_from_thread(self.notify, f"late answer from the host to {what}: {text}", severity=severity, timeout=30)

    @work(thread=True, group="action", exit_on_error=False, description="plan on the host")
    def _remote_plan(self: ExpwatchApp, source: HubSource, record: ExperimentRecord, action: str) -> None:
        from state.hub.actions import PLAN

        from app.screens.confirm import ConfirmDialog

        answer = self._ask(source, record, action, PLAN)
        if answer is None:
            return
        dialog = ConfirmDialog(answer.title, list(answer.lines), confirm_label=answer.confirm_label, refusal=answer.refusal)
        self._confirm(dialog, lambda: self._remote_execute(source, record, action, answer.plan_id))

    @work(thread=True, group="action", exit_on_error=False, description="execute on the host")
    def _remote_execute(self: ExpwatchApp, source: HubSource, record: ExperimentRecord, action: str, plan_id: str | None) -> None:
        from state.hub.actions import EXECUTE

        answer = self._ask(source, record, action, EXECUTE, plan_id)
        if answer is not None:
            self.call_from_thread(self.notify, answer.text, severity="warning" if answer.warning else "information", timeout=8)


__all__ = ["RemoteActionFlows", "agent_command"]
