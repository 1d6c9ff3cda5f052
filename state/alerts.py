"""Alerts: the transitions a user wants to hear about without looking (failed, went stale, finished).

A transition is a row that the board already held changing category, so the
rows of a first scan, and the first verdict on a row loaded as running, never
alert: only a change the user could have watched happen does. Pure: the board
finds them in ``apply``; the App decides how to tell (a notice, the bell, a hook).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from state.record import ExperimentRecord

if TYPE_CHECKING:
    from state.board import BoardRow

FAILED = "failed"
STALE = "stale"
FINISHED = "finished"
ALERT_KINDS = (FAILED, STALE, FINISHED)
_FINISHED_STATUSES = frozenset({"completed", "aggregated"})


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str
    key: str
    """The board's key of the row."""
    experiment_id: str
    source: str
    from_status: str
    to_status: str
    reason: str

    def message(self) -> str:
        """One line for a notice (data: to be shown as plain text, never markup)."""
        head = {FAILED: "failed", STALE: "went stale", FINISHED: "finished"}[self.kind]
        return f"{self.experiment_id} {head}" + (f": {self.reason}" if self.reason else "")

    def to_json_dict(self, at: datetime) -> dict[str, Any]:
        """The event a ``--notify-cmd`` hook reads on its stdin."""
        return {
            "event": self.kind,
            "experiment": self.experiment_id,
            "key": self.key,
            "source": self.source,
            "from": self.from_status,
            "to": self.to_status,
            "reason": self.reason,
            "message": self.message(),
            "at": at.isoformat(timespec="seconds"),
        }


def _kind(before: str, after: str) -> str | None:
    if after == FAILED and before != FAILED:
        return FAILED
    if after == STALE and before != STALE:
        return STALE
    if after in _FINISHED_STATUSES and before not in _FINISHED_STATUSES:
        return FINISHED
    return None


def transition_alert(key: str, old: BoardRow, new: BoardRow) -> Alert | None:
    """The alert ``old`` -> ``new`` raises, if any."""
    entry = new.entry
    if not isinstance(entry, ExperimentRecord) or not isinstance(old.entry, ExperimentRecord):
        return None
    before, after = old.category, new.category
    kind = _kind(before, after)
    if kind is None:
        return None
    if kind == STALE and old.verdict is None:
        return None  # the first verdict on a row loaded as running: what it was, not a change
    if kind == STALE:
        reason = new.verdict.reason if new.verdict is not None else ""
    elif kind == FAILED:
        reason = entry.error_message or ""
    else:
        reason = f"{entry.runs_done}/{entry.runs_total} runs" if entry.runs_total else ""
    return Alert(kind, key, entry.experiment_id, new.source, before, after, reason.splitlines()[0] if reason else "")


__all__ = ["ALERT_KINDS", "FAILED", "FINISHED", "STALE", "Alert", "transition_alert"]
