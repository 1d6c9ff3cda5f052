"""One experiment file read in full, for the inspector: plain data, no Textual.

The main screen needs a summary of every file (``state.detect``); the
inspector needs everything one file holds, kept fresh while it is open. That
reading lives here, below the widgets, so a widget can take its values
(``StepView``, ``HistoryRow``) without reaching into the app, and the reading
can be tested and benchmarked without a screen.
"""

from state.collector import collector_paused
from state.inspection.display import display_path, local_time
from state.inspection.extras import Extras, ExtrasReader, ResumeCommand, VerdictProvider
from state.inspection.history import HistoryReader, HistoryRow
from state.inspection.processes import process_rows
from state.inspection.reader import SnapshotReader, StoreSnapshotReader
from state.inspection.snapshot import (
    PREVIEW_BYTES,
    RunsJson,
    Snapshot,
    read_bytes,
    read_snapshot,
    runs_from_json,
    stat_version,
)
from state.inspection.steps import SourceCheck, StepChecker, StepView, function_source

__all__ = [
    "PREVIEW_BYTES",
    "Extras",
    "ExtrasReader",
    "HistoryReader",
    "HistoryRow",
    "ResumeCommand",
    "RunsJson",
    "Snapshot",
    "SnapshotReader",
    "SourceCheck",
    "StepChecker",
    "StepView",
    "StoreSnapshotReader",
    "VerdictProvider",
    "collector_paused",
    "display_path",
    "function_source",
    "local_time",
    "process_rows",
    "read_bytes",
    "read_snapshot",
    "runs_from_json",
    "stat_version",
]
