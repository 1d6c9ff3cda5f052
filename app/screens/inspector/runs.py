"""The Runs table of one read, and where each of its rows' runs sits in the document.

The table is a widget's data (``RunTableData``), so it is built here, in the
screen's worker thread, from what ``state.inspection`` decoded; row keys are
the run ids made unique, which is how the Run tab finds a chosen run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from state.inspection import RunsJson, Snapshot
from state.lem import LemExperimentState
from state.native import RunRecord
from widgets.run_table import RunTableData, build_legacy_run_table, build_run_table


@dataclass(frozen=True)
class RunsView:
    table: RunTableData
    index: Mapping[str, int] = field(default_factory=dict)
    """Row key -> position in the document's runs (expwatch files only)."""

    def run(self, snap: Snapshot | None, key: str) -> RunRecord | None:
        doc = snap.doc if snap is not None else None
        position = self.index.get(key)
        return None if doc is None or position is None else doc.runs[position]


def runs_table(runs: RunsJson) -> RunTableData:
    return build_run_table(runs.runs, grid_keys=runs.grid_keys)


def runs_view(snap: Snapshot, built: tuple[RunsJson, RunTableData] | None = None) -> RunsView | None:
    """The view of ``snap``'s runs; ``built`` is a table already made from the same decoded runs."""
    if snap.runs_json is not None and snap.doc is not None:
        if built is not None and built[0] is snap.runs_json:
            table = built[1]
        else:
            table = runs_table(snap.runs_json)
        return RunsView(table, {row.key: n for n, row in enumerate(table.rows)})
    model = snap.model
    if isinstance(model, LemExperimentState) and (model.completed_runs or model.failed_runs):
        return RunsView(build_legacy_run_table(model.completed_runs, model.failed_runs))
    return None
