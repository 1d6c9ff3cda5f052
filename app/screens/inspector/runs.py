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
from state.mltraq.experiment import MltraqExperiment, MltraqRun
from state.native import ExperimentDoc, RunRecord
from widgets.run_table import RunTableData, TableRow, build_legacy_run_table, build_run_table, format_value


@dataclass(frozen=True)
class RunsView:
    table: RunTableData
    index: Mapping[str, int] = field(default_factory=dict)
    """Row key -> position in the document's runs (expwatch files and MLtraq experiments)."""

    def run(self, snap: Snapshot | None, key: str) -> RunRecord | MltraqRun | None:
        model = snap.model if snap is not None else None
        position = self.index.get(key)
        if position is None or not isinstance(model, ExperimentDoc | MltraqExperiment):
            return None
        return model.runs[position]


def mltraq_runs_table(model: MltraqExperiment) -> RunTableData:
    """One column per column of the runs table (``PRAGMA table_info``), in its order; nothing dropped or added.

    MLtraq's own loader keeps only the columns its first run had; a table
    altered since, or written by other code, shows everything here.
    """
    columns = model.columns
    status_column = columns.index("status") if "status" in columns else columns.index("id_run") if "id_run" in columns else 0
    rows = []
    seen: set[str] = set()
    for run in model.runs:
        key = run.id_run if run.id_run not in seen else f"{run.id_run}@{run.index}"
        seen.add(key)
        values = {"id_run": run.id_run, "id_experiment": model.id_experiment, **run.fields}
        cells = tuple(format_value(values.get(c)) for c in columns)
        rows.append(TableRow(key, run.status or "", cells))
    return RunTableData.from_rows(columns, rows, status_column=status_column)


def runs_table(runs: RunsJson) -> RunTableData:
    return build_run_table(runs.runs, grid_keys=runs.grid_keys)


def runs_view(snap: Snapshot, built: tuple[RunsJson, RunTableData] | None = None) -> RunsView | None:
    """The view of ``snap``'s runs; ``built`` is a table already made from the same decoded runs."""
    if isinstance(snap.model, MltraqExperiment):
        table = mltraq_runs_table(snap.model)
        return RunsView(table, {row.key: n for n, row in enumerate(table.rows)})
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
