"""The inspector's text styles: theme variables only, so every theme reads well."""

from __future__ import annotations

from textual.content import Content

from state.verdict import Liveness

STATUS_STYLE = {
    "running": "bold $text-accent",
    "completed": "$text-success",
    "aggregated": "bold $text-success",
    "failed": "bold $text-error",
    "interrupted": "bold $text-warning",
    "initialised": "$text-muted",
    "pending": "$text-muted",
}
VERDICT_STYLE = {Liveness.ALIVE: "bold $text-success", Liveness.DEAD: "bold $text-error", Liveness.UNKNOWN: "bold $text-warning"}
MUTED = "$text-muted"


def status_content(status: str) -> Content:
    return Content.styled(status, STATUS_STYLE.get(status, ""))
