"""The main screen's layout at 80x24 and wide: columns, sort, cursor, footer, panels, palette."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.text import Text
from textual.widgets import SelectionList

from app.screens.columns import ColumnPicker
from state.telemetry import GpuSnapshot
from widgets.experiment_table import ExperimentTable
from widgets.gpu_panel import GpuPanel, render_gpus
from widgets.key_footer import KeyFooter
from widgets.process_table import ProcessTable
from widgets.status_header import fit_path

from app.app import DashboardOptions, ExpwatchApp
from tests.dashboard.conftest import DEAD_PID, FROZEN, ScriptedProbe, StaticGpuSource, native_doc, write_raw
from tests.dashboard.helpers import make_app, wait_for


def table(app) -> ExperimentTable:
    return app.screen_stack[0].query_one(ExperimentTable)


def header_text(t: ExperimentTable) -> str:
    return t.render_line(0).text


def shown_keys(t: ExperimentTable) -> list[str]:
    return [c.key for c, _ in t.visible_columns(t.scrollable_content_region.width)]


async def test_columns_hidden_by_the_width_are_announced_and_can_be_chosen(state_dir: Path):
    app = make_app(state_dir, watch=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="scan")
        t = table(app)
        hidden = t.hidden_columns
        assert {c.key for c in hidden} == {"name", "energy", "started", "elapsed", "eta"}
        assert header_text(t).rstrip().endswith(f" +{len(hidden)}›")
        app.main.table.show_sort("energy", False)  # sorted by a column left out: the arrow sits by the marker
        await pilot.pause()
        assert header_text(t).rstrip().endswith(f"▲+{len(hidden)}›") and "▲" not in header_text(t).rstrip()[:-4]
        app.main.table.show_sort("status", False)
        await pilot.pause()
        assert header_text(t).rstrip().endswith(f" +{len(hidden)}›")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ColumnPicker), what="column picker")
        picker = app.screen
        options = picker.query_one(SelectionList)
        assert "name" not in options.selected and "status" in options.selected
        options.select_all()
        await pilot.press("y")
        await wait_for(pilot, lambda: t.chosen is not None, what="columns chosen")
        await pilot.pause()
        assert shown_keys(t) == [c.key for c in t.columns]
        assert not t.hidden_columns and "+" not in header_text(t)[-4:]
        assert t.max_scroll_x > 0, "what does not fit scrolls sideways"
        t.focus()
        await pilot.press("right", "right")
        assert t.scroll_x > 0
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ColumnPicker), what="column picker")
        await pilot.press("f")
        await wait_for(pilot, lambda: t.chosen is None, what="fit to width again")
        await pilot.pause()
        assert t.hidden_columns and t.max_scroll_x == 0


async def test_wide_screens_share_space_by_content(state_dir: Path):
    app = make_app(state_dir, watch=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="scan")
        t = table(app)
        await pilot.pause()
        assert not t.hidden_columns
        widths = {c.key: w for c, w in t.visible_columns(t.scrollable_content_region.width)}
        assert widths["name"] >= len("meta-llama/Llama-2-7b-hf"), "the model name is whole"
        assert widths["id"] < 58
        processes = app.screen_stack[0].query_one(ProcessTable)
        assert processes.row_count == 1
        assert processes.outer_size.height == processes.row_count + 2, "the rows it needs, no more"


class ManyGpus(StaticGpuSource):
    """Sixteen GPUs: more panel lines than the panels' usual cap."""

    def sample(self) -> GpuSnapshot:
        one = super().sample().gpus[1]
        return GpuSnapshot(taken_at=FROZEN, gpus=tuple(replace(one, index=i, uuid=f"GPU-{i}") for i in range(16)),
                           status="ok", simulated=True)


async def test_few_experiments_let_the_panels_show_every_line_and_the_table_keeps_the_rest(state_dir: Path):
    """160x48 with six rows and sixteen GPUs: the GPU panel shows all of them (over its usual cap),
    down to the footer, and the height they do not need stays with the table; with more rows
    than fit, the table takes the height and the panels their cap."""
    options = DashboardOptions(sources=(state_dir,), watch=False, refresh=0.2)
    app = ExpwatchApp(options, clock=lambda: FROZEN, probe=ScriptedProbe(), gpu_source=ManyGpus())
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete and app.latest_gpus is not None, what="scan and GPUs")
        await pilot.pause()
        screen = app.screen_stack[0]
        t, panels = table(app), screen.query_one("#panels")
        gpus = screen.query_one(GpuPanel)
        footer_top = screen.query_one("KeyFooter").region.y
        await wait_for(pilot, lambda: gpus.outer_size.height >= 16 + 2, what="every GPU line shown")
        assert panels.region.bottom == footer_top
        assert t.outer_size.height > t.row_count + 1, "the height the panels do not need is the table's"
        for i in range(60):
            write_raw(state_dir, native_doc(f"more-{i:02d}", "completed", pid=DEAD_PID, done=4))
        app.reconcile_now(app.sources[0])
        await wait_for(pilot, lambda: t.row_count > 60, what="more rows")
        await pilot.pause()
        assert panels.outer_size.height <= 10 and t.outer_size.height > 20, "rows that do not fit: the table takes the height"
        assert panels.region.bottom == footer_top


async def test_few_experiments_at_80x24_leave_no_gap_above_the_footer(state_dir: Path):
    """The short screen's panel cap yields to the few-rows rule: the panels reach the footer, the table keeps the rest."""
    app = make_app(state_dir, watch=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="scan")
        await pilot.pause()
        screen = app.screen_stack[0]
        panels = screen.query_one("#panels")
        assert screen.has_class("-short") and screen.has_class("-roomy")
        assert panels.region.bottom == screen.query_one("KeyFooter").region.y


async def test_click_a_header_to_sort_and_again_to_reverse(state_dir: Path):
    app = make_app(state_dir, watch=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="scan")
        t = table(app)
        assert "status ▲" in header_text(t)
        x = header_text(t).index("runs ✓")
        await pilot.click(ExperimentTable, offset=(x + 1, 0))
        await wait_for(pilot, lambda: app.board.sort_mode == "runs", what="sorted by runs")
        assert not app.board.sort_reverse and "runs ✓/✗/all▲" in header_text(t)
        await pilot.click(ExperimentTable, offset=(x + 1, 0))
        await wait_for(pilot, lambda: app.board.sort_reverse, what="reversed")
        assert "runs ✓/✗/all▼" in header_text(t)
        order = t.keys
        done = {k: app.board.rows[k].entry for k in order if hasattr(app.board.rows[k].entry, "runs_done")}
        ranked = [k for k in order if k in done and done[k].runs_total]
        assert [done[k].runs_done for k in ranked] == sorted((done[k].runs_done for k in ranked), reverse=True)
        await pilot.press("s")
        assert app.board.sort_mode == "status" and "status ▲" in header_text(t)


async def test_the_cursor_starts_on_the_top_row_and_stays_where_the_user_puts_it(state_dir: Path):
    for n in range(30):
        write_raw(state_dir, native_doc(f"z-{n:02d}", "completed", pid=DEAD_PID, done=4))
    app = make_app(state_dir, watch=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="scan")
        t = table(app)
        assert t.cursor_index == 0 and t.cursor_key == t.keys[0]
        await pilot.press("j", "j")
        key = t.cursor_key
        await pilot.press("s")
        assert t.cursor_key == key, "a new order keeps the row the user chose"


async def test_acting_on_the_top_row_keeps_the_cursor_on_it_through_a_new_order(state_dir: Path):
    """The row a key acted on stays selected when it moves (marked stale, resumed): a second key
    press acts on it again, never on whichever row took the top place."""
    from app.screens.confirm import ConfirmDialog

    for n in range(30):
        write_raw(state_dir, native_doc(f"z-{n:02d}", "completed", pid=DEAD_PID, done=4))
    app = make_app(state_dir, watch=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="scan")
        t = table(app)
        key = t.cursor_key
        assert t.cursor_index == 0 and not t.cursor_placed
        await pilot.press("S")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the mark-stale dialog")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmDialog), what="the dialog closed")
        await pilot.press("s")
        await pilot.pause()
        assert t.keys[0] != key, "the new order moved the row"
        assert t.cursor_key == key


async def test_the_footer_fits_80_columns_and_keeps_the_keys_that_matter(state_dir: Path):
    app = make_app(state_dir, watch=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="scan")
        await pilot.pause()
        keys = app.screen.query_one(KeyFooter).keys
        shown = {k.key for k in keys if k.end > k.start and k.end <= 80}
        assert {"slash", "enter", "R", "S", "C", "question_mark", "q"} <= shown
        assert all(k.end <= 80 for k in keys)


async def test_a_click_on_a_footer_key_presses_it_and_the_key_under_the_mouse_is_highlighted(state_dir: Path):
    app = make_app(state_dir, watch=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="scan")
        await pilot.pause()
        footer = app.screen.query_one(KeyFooter)
        help_key = next(k for k in footer.keys if k.key == "question_mark")
        plain = footer.render_line(0)
        await pilot.hover(KeyFooter, offset=(help_key.start + 1, 0))
        await wait_for(pilot, lambda: footer.render_line(0) != plain, what="the key under the mouse highlighted")
        assert footer.render_line(0).text == plain.text
        await pilot.click(KeyFooter, offset=(help_key.start, 0))
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "HelpScreen", what="help from the footer")


def test_the_header_path_says_the_short_thing_that_fits():
    path = "/tmp/expwatch-demo-wyvmvysw/.state"
    assert fit_path(path, 80) == path
    assert fit_path(path, 31) == "…/expwatch-demo-wyvmvysw/.state"
    assert fit_path(path, 30) == "…/.state"
    assert fit_path(path, 10) == "…/.state"
    assert fit_path(path, 5) == ""


def test_gpu_messages_are_never_cut_mid_word():
    snapshot = GpuSnapshot(taken_at=FROZEN, gpus=(), status="no NVML library", detail="NVML Shared Library Not Found")
    for width in (100, 60, 40, 20):
        text = render_gpus(snapshot, {}, {}, {}, width).plain
        assert len(text) <= width or text == "GPUs unavailable"
        assert "Sha…" not in text and text.startswith("GPUs unavailable")
    assert "NVML Shared Library Not Found" in render_gpus(snapshot, {}, {}, {}, 100).plain
    assert isinstance(render_gpus(snapshot, {}, {}, {}, 20), Text)


async def test_the_palette_has_every_action_and_a_screenshot_that_works(state_dir: Path, tmp_path: Path, monkeypatch):
    app = make_app(state_dir, watch=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="scan")
        commands = {c.title: c for c in app.get_system_commands(app.screen_stack[0])}
        for title in ("Filter", "Sort by runs done/failed/all", "Sort by last update", "Reverse the sort", "Choose columns",
                      "Clean up stale experiments", "Show or hide the GPU panel", "Show or hide the device panel",
                      "Help: keys", "Screenshot"):
            assert title in commands, title
        commands["Sort by energy"].callback()
        assert app.board.sort_mode == "energy"
        commands["Reverse the sort"].callback()
        assert app.board.sort_reverse
        out = tmp_path / "shots"
        out.mkdir()
        monkeypatch.chdir(out)
        commands["Screenshot"].callback()
        saved = list(out.glob("expwatch-*.svg"))
        assert len(saved) == 1 and saved[0].read_text().startswith("<svg")
        await wait_for(pilot, lambda: any(saved[0].name in str(n.message) for n in app._notifications), what="where it saved")
