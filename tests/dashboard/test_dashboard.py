"""Pilot tests: every key and mode of the main screen, on real files."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from app.screens.confirm import HelpScreen
from state.native import ExperimentDoc
from state.transitions import ExperimentStatus
from state.store import StateStore
from widgets.experiment_table import ExperimentTable
from widgets.gpu_panel import GpuPanel
from widgets.process_table import ProcessTable
from widgets.status_header import StatusHeader

from tests.dashboard.conftest import ALIVE_PID, DEAD_PID, lem_file, native_doc
from tests.dashboard.helpers import make_app, wait_for


def table(app) -> ExperimentTable:
    return app.screen_stack[0].query_one(ExperimentTable)


def shown_ids(app) -> list[str]:
    return list(table(app).keys)


def entries(app) -> dict:
    return {key: row.entry for key, row in app.board.rows.items()}


async def test_loads_every_file_and_skips_non_experiments(state_dir: Path):
    app = make_app(state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="initial scan")
        keys = set(shown_ids(app))
        assert keys == {"sweep-alive", "sweep-dead", "sweep-done", "sweep-failed", "lem-interrupted", "broken"}
        assert "campaign_manifest" not in keys
        # Status sort puts the stale experiment first, then running.
        assert shown_ids(app)[:2] == ["sweep-dead", "sweep-alive"]
        header = app.screen_stack[0].query_one(StatusHeader)
        assert header.counts["stale"] == 1 and header.counts["running"] == 1 and header.counts["broken"] == 1


async def test_rows_read_before_the_app_are_in_its_first_frame(state_dir: Path, monkeypatch):
    """As the dashboard command opens it: the sources opened and their first rows read (and judged)
    before the App exists; the first frame draws them, and the scan brings the rest once each."""
    from app.app import DashboardOptions, ExpwatchApp
    from state.sources import open_sources
    from tests.dashboard.conftest import FROZEN, ScriptedProbe, StaticGpuSource

    monkeypatch.setattr("state.sources.directory.FIRST_SCREEN_BATCH", 4)
    (source,) = open_sources([state_dir])
    source.read_first_screen(ScriptedProbe(), lambda: FROZEN)
    assert source.wait_first_screen(10.0)
    options = DashboardOptions(sources=(state_dir,), opened=(source,), gpus=False)
    app = ExpwatchApp(options, clock=lambda: FROZEN, probe=ScriptedProbe(), gpu_source=StaticGpuSource())
    assert app.sources == [source] and len(app.board) == 4  # on the board before the screen is composed
    posted, at_first_frame = [], []
    real, after_first_frame = app.on_source_changed, app._after_first_frame
    app.on_source_changed = lambda message: posted.append(message) or real(message)  # type: ignore[method-assign]
    # The scan reads on once the first frame is drawn (``_after_first_frame``): what that frame showed.
    app._after_first_frame = lambda: at_first_frame.append(shown_ids(app)) or after_first_frame()  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: bool(at_first_frame), what="the first frame")
        first = set(at_first_frame[0])
        assert len(first) == 4 and not posted
        if "sweep-dead" in first:
            assert app.board.rows[app.board.key(source.name, "sweep-dead")].verdict.is_dead  # judged ahead
        await wait_for(pilot, lambda: app.scan_complete, what="initial scan")
        keys = [k for m in posted for k in m.delta.upserts]
        assert first.isdisjoint(keys) and len(keys) == len(set(keys))  # the rest, each once
        assert set(shown_ids(app)) == {"sweep-alive", "sweep-dead", "sweep-done", "sweep-failed", "lem-interrupted", "broken"}
        assert header_counts(app)["stale"] == 1


def test_the_dashboard_command_opens_each_source_once_and_reads_its_first_rows_ahead(state_dir: Path, monkeypatch):
    import app.app
    from app.cli import main
    from state.sources import DirectorySource

    given = []
    monkeypatch.setattr(app.app, "run_dashboard", lambda options: given.append(options) or 0)
    assert main([str(state_dir), "--read-only"]) == 0
    (options,) = given
    (source,) = options.opened
    assert isinstance(source, DirectorySource) and source.read_only and source.root == state_dir.resolve()
    assert source.wait_first_screen(10.0)
    first = source.first_screen()
    assert first is not None and "sweep-dead" in first.upserts and first.verdicts  # judged on this host


def header_counts(app) -> dict:
    return app.screen_stack[0].query_one(StatusHeader).counts


async def test_cursor_keys_and_process_table(state_dir: Path):
    app = make_app(state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        t = table(app)
        assert t.cursor_key == "sweep-dead"
        await pilot.press("j")
        assert t.cursor_key == "sweep-alive"
        await pilot.press("down")
        await pilot.press("k")
        assert t.cursor_key == "sweep-alive"
        processes = app.screen_stack[0].query_one(ProcessTable)
        assert processes.row_count == 1
        assert processes.get_row(0).pid == ALIVE_PID
        await pilot.press("end")
        assert t.cursor_key == shown_ids(app)[-1]
        await pilot.press("home")
        assert t.cursor_key == shown_ids(app)[0]


async def test_filter_by_status_and_clear(state_dir: Path):
    app = make_app(state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        await pilot.press("slash")
        await pilot.press(*"stale")
        await wait_for(pilot, lambda: shown_ids(app) == ["sweep-dead"], what="filter on stale")
        await pilot.press("enter")  # back to the table, filter kept
        assert shown_ids(app) == ["sweep-dead"]
        await pilot.press("escape")
        assert len(shown_ids(app)) == 6


async def test_sort_cycles(state_dir: Path):
    app = make_app(state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        await pilot.press("s")
        assert app.board.sort_mode == "updated"
        await pilot.press("s")
        assert app.board.sort_mode == "id"
        await wait_for(pilot, lambda: shown_ids(app) == sorted(shown_ids(app)), what="id order")
        await pilot.press("s", "s")
        assert app.board.sort_mode == "status"


async def test_toggle_panels(state_dir: Path):
    app = make_app(state_dir, gpus=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        panel = app.screen_stack[0].query_one(GpuPanel)
        await wait_for(pilot, lambda: panel.shown is not None and "sweep-alive" in panel.shown.plain, what="GPU process attributed to its experiment")
        assert panel.display
        await pilot.press("g")
        assert not panel.display
        await pilot.press("d")
        assert not app.screen_stack[0].query_one("#panels").display
        await pilot.press("g")
        assert panel.display


async def test_help_and_quit(state_dir: Path):
    app = make_app(state_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        await pilot.press("question_mark")
        assert app.screen.__class__.__name__ == "HelpScreen"
        await pilot.press("escape")
        assert app.screen is app.screen_stack[0]
        await pilot.press("q")
    assert app.return_code == 0


async def test_ctrl_c_quits(state_dir: Path):
    app = make_app(state_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        await pilot.press("ctrl+c")
    assert app.return_code == 0 and not app.is_running


async def test_watcher_follows_changes_end_to_end(state_dir: Path):
    """Write, rewrite, break, fix and delete real files; the rows follow within a bounded wait."""
    app = make_app(state_dir)
    store = StateStore(state_dir, durable=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        store.create(native_doc("late-arrival", "running", pid=ALIVE_PID, runs=10, done=1))
        await wait_for(pilot, lambda: "late-arrival" in shown_ids(app), what="new file shown")
        doc = ExperimentDoc.model_validate_json((state_dir / "late-arrival.json").read_bytes())
        store.save(doc.model_copy(update={"status": ExperimentStatus.COMPLETED}))
        await wait_for(pilot, lambda: entries(app)["late-arrival"].status == "completed", what="status change")
        (state_dir / "late-arrival.json").write_text("{ not json")
        await wait_for(pilot, lambda: entries(app)["late-arrival"].broken, what="broken row")
        store.save(doc, key="late-arrival")
        await wait_for(pilot, lambda: not entries(app)["late-arrival"].broken, what="recovered row")
        (state_dir / "late-arrival.json").unlink()
        await wait_for(pilot, lambda: "late-arrival" not in shown_ids(app), what="deleted row removed")
        assert "late-arrival" not in entries(app)


async def test_a_file_written_while_the_watch_is_renewed_is_shown_at_once(state_dir: Path, monkeypatch):
    """A new study folder renews the watch; what is written before the new watch begins sends it
    no event, so the renewed watch reads the directory once instead of leaving it to the reconcile."""
    import runtime.watcher
    from runtime.watcher import watch_directory

    store = StateStore(state_dir, durable=False)
    starts: list[int] = []

    async def watch_and_write_in_the_gap(root, stop, fresh=None):
        starts.append(1)
        if len(starts) == 2:  # the first watch ended and its reconcile is done; the second has not begun
            while any(b.startswith("reconcile:") for b in app._busy):
                await asyncio.sleep(0.01)
            store.create(native_doc("in-the-gap", "running", pid=ALIVE_PID))
        async for batch in watch_directory(root, stop, fresh):
            yield batch

    monkeypatch.setattr(runtime.watcher, "watch_directory", watch_and_write_in_the_gap)
    app = make_app(state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete and len(starts) == 1, what="the first watch")
        (state_dir / "new-study").mkdir()  # a candidate study folder: the watch ends to include it
        await wait_for(pilot, lambda: len(starts) == 2, what="the renewed watch")
        await wait_for(pilot, lambda: "in-the-gap" in entries(app), what="the file written in the gap")


async def test_poll_mode_without_events(state_dir: Path):
    from app.app import DashboardOptions, ExpwatchApp
    from tests.dashboard.conftest import FROZEN, ScriptedProbe

    app = ExpwatchApp(DashboardOptions(sources=(state_dir,), poll=0.1, gpus=False), clock=lambda: FROZEN, probe=ScriptedProbe())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        StateStore(state_dir, durable=False).create(native_doc("polled", "running", pid=ALIVE_PID))
        await wait_for(pilot, lambda: "polled" in entries(app), what="poller picks the file up")


def _snapshot_dir(root: Path) -> dict[str, tuple[int, bytes]]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = (path.stat().st_mtime_ns, path.read_bytes())
    return out


async def test_read_only_hides_and_refuses_and_writes_nothing(state_dir: Path):
    before = _snapshot_dir(state_dir)
    os.chmod(state_dir, stat.S_IRUSR | stat.S_IXUSR)
    try:
        app = make_app(state_dir, read_only=True)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.scan_complete)
            assert app.screen_stack[0].query_one(StatusHeader).read_only
            bound = {b.binding.action for b in app.screen.active_bindings.values() if b.enabled}
            assert not {"resume", "mark_stale", "stop", "cleanup"} & bound
            footer_text = " ".join(k.description for k in app.screen.query_one("KeyFooter").keys)
            assert "Resume" not in footer_text and "Mark stale" not in footer_text
            # Pressing the keys does nothing; calling the actions in code refuses.
            await pilot.press("S", "R", "K", "C")
            assert app.screen is app.screen_stack[0]
            await pilot.press("question_mark")  # the help lists only what an observer can do
            help_screen = app.screen
            assert isinstance(help_screen, HelpScreen)
            assert [key for key, _ in help_screen.rows if key in {"R", "S", "K", "C"}] == []
            assert "enter" in {key for key, _ in help_screen.rows}
            await pilot.press("escape")
            app.request_mark_stale("sweep-dead")
            app.request_resume("lem-interrupted")
            app.request_cleanup()
            app.request_stop("sweep-alive")
            await pilot.pause(0.2)
            assert app.screen is app.screen_stack[0]
            assert app.sources[0].read_only
    finally:
        os.chmod(state_dir, stat.S_IRWXU)
    assert _snapshot_dir(state_dir) == before


async def test_read_only_creates_no_sidecar(tmp_path: Path):
    """An observer on a fresh directory (written by another tool) leaves it as it found it."""
    root = tmp_path / "lem"
    root.mkdir()
    (root / "exp.json").write_text(lem_file("exp", "running", DEAD_PID).to_json())
    before = sorted(p.name for p in root.iterdir())
    app = make_app(root, read_only=True, gpus=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        await pilot.press("S")
        await pilot.pause(0.1)
    assert sorted(p.name for p in root.iterdir()) == before


async def test_watcher_with_a_relative_state_dir(tmp_path: Path, monkeypatch):
    """Watch events carry absolute paths; a relative state dir must still match them."""
    (tmp_path / "state").mkdir()
    monkeypatch.chdir(tmp_path)
    app = make_app(Path("state"))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        StateStore(Path("state"), durable=False).create(native_doc("relative", "running", pid=ALIVE_PID))
        # Well under the 30 s reconciliation: only the watcher can have seen it.
        await wait_for(pilot, lambda: "relative" in shown_ids(app), timeout=5, what="watch event on a relative dir")


async def test_mark_stale_key_confirms_then_writes_and_journals(state_dir: Path):
    app = make_app(state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        assert table(app).cursor_key == "sweep-dead"
        await pilot.press("S")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmDialog", what="dialog")
        await pilot.press("n")  # cancel: nothing changes
        await wait_for(pilot, lambda: app.screen is app.screen_stack[0], what="dialog closed")
        assert ExperimentDoc.model_validate_json((state_dir / "sweep-dead.json").read_bytes()).status == "running"
        await pilot.press("S")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmDialog", what="dialog")
        await pilot.press("y")
        await wait_for(pilot, lambda: entries(app)["sweep-dead"].status == "interrupted", what="row turns interrupted")
    doc = ExperimentDoc.model_validate_json((state_dir / "sweep-dead.json").read_bytes())
    assert doc.status == "interrupted"
    assert doc.history[-1].to == "interrupted"
    journal = (state_dir / ".expwatch" / "journal.jsonl").read_text()
    assert "sweep-dead" in journal and "mark-stale" in journal


async def test_mark_stale_refused_for_a_live_owner(state_dir: Path):
    app = make_app(state_dir)
    before = (state_dir / "sweep-alive.json").read_bytes()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        table(app).move_cursor_to_key("sweep-alive")
        await pilot.press("S")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmDialog", what="dialog")
        assert app.screen.refusal and "alive" in app.screen.refusal
        assert not app.screen.query("#confirm")
        assert not any(app.screen.refusal in line for line in app.screen.lines), "the refusal is said once, on top"
        await pilot.press("y")  # no confirm button: y does nothing
        assert app.screen.__class__.__name__ == "ConfirmDialog"
        await pilot.press("escape")
    assert (state_dir / "sweep-alive.json").read_bytes() == before


async def test_resume_key_shows_the_dry_run_and_refuses_a_live_experiment(state_dir: Path):
    app = make_app(state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        table(app).move_cursor_to_key("sweep-alive")
        await pilot.press("R")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmDialog", what="resume dialog")
        assert app.screen.refusal is not None
        await pilot.press("escape")
        table(app).move_cursor_to_key("lem-interrupted")
        await pilot.press("R")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmDialog", what="resume dialog")
        text = "\n".join(app.screen.lines) + str(app.screen.refusal)
        assert "lem-interrupted" in text
        await pilot.press("escape")


async def test_cleanup_key_lists_dead_experiments(state_dir: Path):
    app = make_app(state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        await pilot.press("C")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmDialog", what="cleanup dialog")
        assert any("sweep-dead" in line for line in app.screen.lines)
        assert not any("sweep-alive" in line for line in app.screen.lines)
        await pilot.press("y")
        await wait_for(pilot, lambda: entries(app)["sweep-dead"].status == "interrupted", what="cleaned")
        assert entries(app)["sweep-alive"].status == "running"


async def test_command_palette_offers_actions_for_the_selection(state_dir: Path):
    app = make_app(state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        titles = [c.title for c in app.get_system_commands(app.screen_stack[0])]
        assert "Inspect sweep-dead" in titles and "Resume sweep-dead" in titles and "Copy id sweep-dead" in titles
    ro = make_app(state_dir, read_only=True)
    async with ro.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: ro.scan_complete)
        titles = [c.title for c in ro.get_system_commands(ro.screen_stack[0])]
        assert "Inspect sweep-dead" in titles and not any(t.startswith(("Resume", "Mark")) for t in titles)


async def test_enter_opens_the_inspector_and_escape_keeps_the_cursor(state_dir: Path):
    app = make_app(state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        table(app).move_cursor_to_key("sweep-failed")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "InspectorScreen", what="inspector")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.screen_stack[0], what="back on the main screen")
        assert table(app).cursor_key == "sweep-failed"


async def test_many_running_experiments_are_judged_in_turns_and_all_turn_stale(tmp_path: Path, monkeypatch):
    """Past VERDICTS_PER_TICK running rows, each tick judges a rotating share (plus the selected row):
    every row still turns STALE once its owner dies, and no tick judges them all."""
    import app.app as dashboard
    from tests.dashboard.conftest import ScriptedProbe, write_raw

    monkeypatch.setattr(dashboard, "VERDICT_SECONDS", 0.05)
    monkeypatch.setattr(dashboard, "VERDICTS_PER_TICK", 2)
    root = tmp_path / "state"
    root.mkdir()
    ids = [f"run-{i}" for i in range(7)]
    for ident in ids:
        write_raw(root, native_doc(ident, "running", pid=ALIVE_PID))
    probe = ScriptedProbe()
    app = make_app(root, probe=probe)
    judged: list[int] = []
    source = app.sources[0]
    real_judge = source.judge

    def counting(records, probe, now):
        records = list(records)
        judged.append(len(records))
        return real_judge(records, probe, now)

    source.judge = counting
    async with app.run_test(size=(120, 40)) as pilot:
        verdicts = lambda: sum(row.verdict is not None for row in app.board.rows.values())  # noqa: E731
        await wait_for(pilot, lambda: app.scan_complete and verdicts() == 7, what="first verdicts")
        assert app.screen_stack[0].query_one(StatusHeader).counts["running"] == 7
        judged.clear()
        probe.alive.clear()  # every owner dies at once
        await wait_for(pilot, lambda: app.screen_stack[0].query_one(StatusHeader).counts["stale"] == 7,
                       what="all seven rows stale")
        assert judged and max(judged) <= 3, judged


async def test_state_dir_removed_and_recreated_while_the_dashboard_runs(tmp_path: Path):
    """Rows go when the directory goes; after it comes back, files written before the new
    watch began show up too, and later changes are followed again."""
    import shutil

    from tests.dashboard.conftest import write_raw

    root = tmp_path / "state"
    root.mkdir()
    write_raw(root, native_doc("first", "completed", pid=DEAD_PID, done=4))
    app = make_app(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: shown_ids(app) == ["first"], what="the first file")
        shutil.rmtree(root)
        await wait_for(pilot, lambda: shown_ids(app) == [], timeout=15, what="rows removed with the directory")
        root.mkdir()
        write_raw(root, native_doc("second", "completed", pid=DEAD_PID, done=4))
        await wait_for(pilot, lambda: shown_ids(app) == ["second"], timeout=15, what="the file in the new directory")
        write_raw(root, native_doc("third", "failed", pid=DEAD_PID, done=3, failed=1))
        await wait_for(pilot, lambda: set(shown_ids(app)) == {"second", "third"}, timeout=15,
                       what="a change followed by the new watch")


async def test_a_failed_worker_is_shown_not_dropped(state_dir: Path):
    """A scan that raises leaves no plausible empty table: an error notice, the header, the table say so."""
    app = make_app(state_dir)

    def exploding(batch: int = 500):
        raise RuntimeError("disk on fire")
        yield  # pragma: no cover - a generator that fails on first use

    app.sources[0].initial_batches = exploding
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: bool(app.worker_failures), what="the failure reported")
        assert "RuntimeError: disk on fire" in app.worker_failures[0]
        await pilot.pause(0.05)
        assert any("disk on fire" in str(n.message) for n in app._notifications)
        header = app.main.query_one(StatusHeader)
        assert "disk on fire" in header.note
        assert "could not read" in table(app).empty_text
        assert "no experiments" not in table(app).empty_text


async def test_a_filter_that_matches_nothing_says_so_and_how_to_clear_it(state_dir: Path):
    app = make_app(state_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete)
        await pilot.press("slash", *"zzz-nothing")
        await wait_for(pilot, lambda: shown_ids(app) == [], what="everything filtered out")
        text = table(app).empty_text
        assert "nothing matches the filter 'zzz-nothing'" in text and "esc" in text
        assert "no experiments" not in text
        await pilot.press("escape")
        assert "no experiments" in table(app).empty_text and len(shown_ids(app)) == 6


async def test_a_stale_experiments_process_is_dead_and_its_clock_stopped(state_dir: Path):
    """The selected stale experiment: its process is not "running" and its elapsed does not grow."""
    from datetime import timedelta

    from tests.dashboard.conftest import FROZEN, ScriptedProbe
    from tests.dashboard.helpers import DashboardOptions, ExpwatchApp

    now = [FROZEN]
    app = ExpwatchApp(DashboardOptions(sources=(state_dir,), gpus=False), clock=lambda: now[0], probe=ScriptedProbe())
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete and table(app).cursor_key == "sweep-dead")
        processes = app.main.query_one(ProcessTable)
        await wait_for(pilot, lambda: processes.verdict is not None, what="the verdict reaches the process table")
        cells = [c.plain if hasattr(c, "plain") else c for c in processes._cells(processes.get_row(0))]  # noqa: SLF001
        assert cells[1] == "† dead" and "● running" not in cells
        before = cells[6]
        now[0] = FROZEN + timedelta(minutes=6)
        cells = [c.plain if hasattr(c, "plain") else c for c in processes._cells(processes.get_row(0))]  # noqa: SLF001
        assert cells[6] == before
        row = table(app).get_row("sweep-dead")
        exp_cells = [c.plain if hasattr(c, "plain") else c for c in table(app)._cells(row)]  # noqa: SLF001
        assert exp_cells[2] == "† STALE"


async def test_ages_move_on_an_idle_screen(tmp_path: Path):
    """Nothing changes on disk: the clock tick alone must bring each age up to date."""
    from datetime import timedelta

    from app.app import DashboardOptions, ExpwatchApp
    from tests.dashboard.conftest import FROZEN, ScriptedProbe, StaticGpuSource

    (tmp_path / "idle.json").write_text(lem_file("idle", "completed", None).to_json())
    now = [FROZEN]
    options = DashboardOptions(sources=(tmp_path,), watch=False, gpus=False)
    app = ExpwatchApp(options, clock=lambda: now[0], probe=ScriptedProbe(), gpu_source=StaticGpuSource())
    async with app.run_test(size=(120, 20)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete, what="initial scan")

        def row_text() -> str:
            return "".join(segment.text for segment in table(app).render_line(1))

        assert "1h00m" in row_text()  # updated an hour before the frozen clock
        now[0] = FROZEN + timedelta(hours=3)
        assert table(app).refresh_if_changed() == 1  # what the screen's clock tick calls
        await wait_for(pilot, lambda: "4h00m" in row_text(), what="the repainted age")
