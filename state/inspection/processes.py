"""An experiment's processes as table rows, with what only the inspector shows.

``state.detect.summarize`` builds the same rows for every file of a scan and
leaves out the host and the heartbeat (memory and churn across 100,000
files); one open file can afford them.
"""

from __future__ import annotations

from state.detect import StateModel
from state.detect import process_rows as _rows
from state.record import ProcessRow


def process_rows(model: StateModel) -> tuple[ProcessRow, ...]:
    """The rows ``summarize`` builds, with each process's host and heartbeat."""
    return _rows(model, detail=True)
