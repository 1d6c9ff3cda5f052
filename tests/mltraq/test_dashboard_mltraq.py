"""An MLtraq database beside a state directory in one dashboard, and its experiments in the inspector."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from textual.widgets import TabbedContent

from app.screens.inspector import InspectorScreen
from app.screens.inspector.sections import Section
from state.mltraq.experiment import MltraqExperiment
from widgets.run_table import RunTable
from widgets.step_source import StepSource

from tests.dashboard.conftest import populate
from tests.dashboard.helpers import make_app, wait_for

DATA = Path(__file__).parent / "data"


def board_key(app, source: str, key: str) -> str:
    return next(k for k, row in app.board.rows.items() if row.source == source and row.entry.key == key)


async def test_mltraq_rows_beside_a_state_directory_and_the_codelog_as_steps(tmp_path: Path):
    state = tmp_path / "lab"
    state.mkdir()
    populate(state)
    db = tmp_path / "runs.db"
    shutil.copy(DATA / "runs.db", db)
    app = make_app(state, extra_sources=(db,))
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="initial scan")
        sources = {row.source for row in app.board.rows.values()}
        assert sources == {"lab", "runs.db"}
        assert app.board.get(board_key(app, "runs.db", "grid")).entry.runs_total == 6
        app.inspect(board_key(app, "runs.db", "grid"))
        await wait_for(pilot, lambda: isinstance(app.screen, InspectorScreen) and app.screen.extras is not None, what="inspector")
        screen = app.screen
        assert isinstance(screen.snapshot.model, MltraqExperiment)
        await screen.show_section(Section.STEPS)
        await wait_for(pilot, lambda: len(screen.query(StepSource)) == 2, what="codelog steps")
        assert [p.view.name for p in screen.query(StepSource)] == ["train", "evaluate"]
        assert "def train(run):" in screen.query(StepSource).first().view.source
        await screen.show_section(Section.RUNS)
        table = screen.query_one(RunTable)
        await wait_for(pilot, lambda: table.total_rows == 6, what="runs table")
        labels = [c.label for c in table.data.columns]
        assert labels == ["id_experiment", "id_run", "accuracy", "codelog", "loss", "status"]
        assert screen.query_one(TabbedContent).active == Section.RUNS.value
        assert not screen.query_one(TabbedContent).get_tab(Section.HISTORY.value).display


async def test_a_persist_reaches_the_screen(tmp_path: Path):
    state = tmp_path / "lab"
    state.mkdir()
    db = tmp_path / "runs.db"
    shutil.copy(DATA / "runs.db", db)
    app = make_app(state, extra_sources=(db,))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="initial scan")
        key = board_key(app, "runs.db", "failing")
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("UPDATE experiment_failing SET status = 'completed', error = ''")
        conn.close()
        await wait_for(pilot, lambda: app.board.get(key).entry.status == "completed", what="the change on screen")
