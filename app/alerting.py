"""The dashboard's side of alerts: a notice, the terminal bell and the ``--notify-cmd`` hook.

The board finds the transitions (``state.alerts``); this tells the user about
the kinds they asked for, once per transition. The hook runs in a worker so a
slow webhook never holds the screen; its failure is a notice, not a lost event.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual import work

from runtime.notify_hook import run_notify_command
from state.alerts import FINISHED, Alert

if TYPE_CHECKING:
    from app.app import ExpwatchApp


class AlertFlows:
    """Mixed into the App: ``raise_alerts`` after every board change that brought some."""

    def raise_alerts(self: ExpwatchApp, alerts: Iterable[Alert]) -> None:
        wanted = [a for a in alerts if a.kind in self.options.preferences.alerts]
        if not wanted:
            return
        for alert in wanted:
            self.notify(
                alert.message(),
                title="expwatch",
                severity="information" if alert.kind == FINISHED else "error",
                timeout=15,
                markup=False,
            )
        if self.options.preferences.bell:
            self.bell()
        if self.options.preferences.notify_cmd:
            now = self.clock()
            self._run_hook(self.options.preferences.notify_cmd, [a.to_json_dict(now) for a in wanted])

    @work(thread=True, group="alerts", exit_on_error=False, description="--notify-cmd")
    def _run_hook(self: ExpwatchApp, command: str, events: list[dict]) -> None:
        for event in events:
            problem = run_notify_command(command, event)
            if problem is not None:
                self.call_from_thread(self.notify, problem, severity="warning", timeout=10, markup=False)


__all__ = ["AlertFlows"]
