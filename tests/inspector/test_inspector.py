"""Behaviour of the inspector screen, driven with Pilot on real state files."""

from __future__ import annotations

import os
import threading

from textual.widgets import Input, Static, TabbedContent

from app.screens.inspector import InspectorScreen, Section
from state.inspection import PREVIEW_BYTES
from state.journal import JournalEntry
from state.native import ExperimentDoc, RunStatus
from state.verdict import Liveness, StaleVerdict
from tests.inspector.fixtures import (
    BROKEN_BYTES,
    EXPERIMENT_ID,
    LEM_ID,
    STUDY_SOURCE,
    create_broken,
    create_experiment,
    create_lem,
    create_lem_v2,
    write_journal,
)
from tests.inspector.harness import ALIVE, InspectorHost, loaded, wait_for
from widgets.field_tree import FieldTree
from widgets.history_log import HistoryLog
from widgets.overview_panel import OverviewPanel
from widgets.process_table import ProcessTable
from widgets.raw_json import RawJsonView
from widgets.run_table import RunTable
from widgets.step_source import SourceCheck, StepSource

SIZE = (100, 30)


def _overview_text(screen: InspectorScreen) -> str:
    return str(screen.query_one(OverviewPanel).render())


def _run_status(table: RunTable, key: object) -> str:
    """A run row's status cell as drawn."""
    row = table.get_row(key)
    assert row is not None
    cell = table._cells(row)[0]
    return cell if isinstance(cell, str) else cell.plain


def _process_cells(table: ProcessTable, index: int) -> list[str]:
    """One process row's cells as drawn (colours dropped)."""
    row = table.get_row(index)
    assert row is not None
    return [cell if isinstance(cell, str) else cell.plain for cell in table._cells(row)]


def _static_text(screen: InspectorScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def _tabs(screen: InspectorScreen) -> TabbedContent:
    return screen.query_one(TabbedContent)


def _shown_tabs(screen: InspectorScreen) -> set[str]:
    tabs = _tabs(screen)
    return {pane.id for pane in tabs.query("TabPane") if tabs.get_tab(pane.id).display}  # type: ignore[arg-type]


async def test_overview_shows_every_top_level_field_the_verdict_and_the_resume_command():
    store, key, _ = create_experiment()
    threads: list[int] = []

    def provider(record):
        threads.append(threading.get_ident())
        assert record.experiment_id == EXPERIMENT_ID
        return ALIVE

    app = InspectorHost(store, key, verdict_provider=provider)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        text = _overview_text(screen)
        for name in ExperimentDoc.model_fields:
            assert (name if name != "schema_" else "schema") in text, name
        assert "verdict: alive — coordinator pid 4242" in text
        assert "worker pid 4251 on gpu-node-7: no such process" in text
        assert "expwatch run study.py --resume energy-sweep-01" in text
        assert "6 runs: 3 completed, 1 failed, 2 other" in text
        assert "(3s ago)" in text
        assert threads and threading.get_ident() not in threads


async def test_without_a_provider_the_verdict_is_na_and_resume_comes_from_the_app_callable():
    store, key, _ = create_experiment()
    asked: list[str] = []

    def resume(ident: str) -> str:
        asked.append(ident)
        return f"expwatch resume {ident}"

    app = InspectorHost(store, key, resume_command=resume)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        text = _overview_text(screen)
        assert "verdict: n/a" in text
        assert f"expwatch resume {key}" in text
        assert asked == [key]


async def test_a_failing_verdict_provider_is_shown_not_raised():
    store, key, _ = create_experiment()

    def broken_probe(record) -> StaleVerdict:
        raise PermissionError("cannot read /proc/4242/stat")

    app = InspectorHost(store, key, verdict_provider=broken_probe)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        assert "verdict: n/a (PermissionError: cannot read /proc/4242/stat)" in _overview_text(screen)


async def test_processes_are_listed_with_their_progress():
    store, key, _ = create_experiment()
    app = InspectorHost(store, key, section=Section.PROCESSES, verdict_provider=lambda record: ALIVE)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        table = screen.query_one("#process-table", ProcessTable)
        assert table.row_count == 2
        row0 = _process_cells(table, 0)
        row1 = _process_cells(table, 1)
        assert row0[:6] == ["0", "● running", "0", "4250", "gpu-node-7", "2/0/3"]
        assert row1[1] == "✗ failed"
        assert row1[-1] == "MemoryError: CUDA out of memory"


async def test_runs_filter_narrows_the_table_and_counts():
    store, key, _ = create_experiment()
    app = InspectorHost(store, key, section=Section.RUNS)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        table = screen.query_one(RunTable)
        assert table.keys == [f"r-{i:04d}" for i in range(6)]
        await pilot.press("slash")
        assert screen.focused is screen.query_one("#run-filter", Input)
        await pilot.press(*"failed")
        assert table.keys == ["r-0004"]
        assert _static_text(screen, "#run-count") == "1 of 6 runs"
        screen.query_one("#run-filter", Input).value = "PENDING fp16"
        await pilot.pause()
        assert table.keys == ["r-0005"]
        screen.query_one("#run-filter", Input).value = "no-such-run"
        await pilot.pause()
        assert table.row_count == 0
        screen.query_one("#run-filter", Input).value = ""
        await pilot.pause()
        assert table.row_count == 6
        assert _static_text(screen, "#run-count") == "6 runs"


async def test_selecting_a_failed_run_opens_its_detail_with_the_full_traceback():
    store, key, _ = create_experiment()
    app = InspectorHost(store, key, section=Section.RUNS)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        table = screen.query_one(RunTable)
        table.focus()
        await pilot.press("down", "down", "down", "down")
        assert table.cursor_key == "r-0004"
        await pilot.press("enter")
        await wait_for(pilot, lambda: _tabs(screen).active == Section.RUN.value, what="run tab")
        header = _static_text(screen, "#run-header")
        assert "r-0004" in header and "failed" in header
        exception = _static_text(screen, "#run-exception")
        assert "MemoryError: CUDA out of memory" in exception
        assert "Traceback (most recent call last):" in exception
        assert 'raise MemoryError("CUDA out of memory")' in exception
        tree = screen.query_one(FieldTree)
        labels = [str(node.label) for node in tree.root.children]
        assert [label.split()[0] for label in labels] == ["params", "fields", "state", "config"]
        params = tree.root.children[0]
        assert params.is_expanded
        assert [str(child.label) for child in params.children] == ["batch_size: 16", "precision: bf16"]


async def test_steps_show_source_mark_the_running_step_and_flag_changed_files():
    store, key, study = create_experiment()
    app = InspectorHost(store, key, section=Section.STEPS, verdict_provider=lambda record: ALIVE)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        await wait_for(pilot, lambda: len([p for p in screen.query(StepSource) if p.is_mounted]) == 3, what="step panels")
        panels = {p.view.name: p for p in screen.query(StepSource)}
        assert [v.check for v in (p.view for p in panels.values())] == [SourceCheck.SAME] * 3
        assert panels["measure"].view.running_in == ("process 0 (run r-0003)",)
        assert panels["measure"].has_class("-running")
        assert not panels["warmup"].has_class("-running")
        assert panels["measure"].view.location == "study.py:16"
        assert 'raise MemoryError("CUDA out of memory")' in str(panels["measure"].query(Static).last().render())

        study.write_text(STUDY_SOURCE.replace("12.5 * params", "13.0 * params"), encoding="utf-8")
        await pilot.press("r")

        def measure_changed() -> bool:
            views = {p.view.name: p.view for p in screen.query(StepSource)}
            return views["measure"].check is SourceCheck.CHANGED

        await wait_for(pilot, measure_changed, what="changed flag")
        views = {p.view.name: p for p in screen.query(StepSource)}
        assert views["load_model"].view.check is SourceCheck.SAME
        assert views["warmup"].view.check is SourceCheck.SAME
        assert views["measure"].has_class("-changed")
        assert "changed on disk since the run started" in str(views["measure"].query(Static).first().render())

        study.unlink()
        await pilot.press("r")
        await wait_for(
            pilot,
            lambda: all(p.view.check is SourceCheck.MISSING for p in screen.query(StepSource)),
            what="missing flag",
        )


async def test_history_merges_file_transitions_with_this_experiments_journal_entries():
    store, key, _ = create_experiment()
    app = InspectorHost(store, key, section=Section.HISTORY)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        log = screen.query_one(HistoryLog)
        rows = log.entries
        assert [(r.source, r.change) for r in rows] == [
            ("status", "∅ → initialised"),
            ("status", "initialised → running"),
            ("status", "running → interrupted"),
            ("journal", "mark-stale: running → interrupted"),
            ("status", "interrupted → running"),
            ("journal", "resume: interrupted → running"),
        ]
        assert rows[3].who == "bob@laptop-3" and rows[3].why == "pid 4242: no such process"
        assert log.row_count == 6


async def test_raw_search_jumps_to_and_steps_through_matches():
    store, key, _ = create_experiment()
    app = InspectorHost(store, key, section=Section.RAW)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        view = screen.query_one(RawJsonView)
        lines = view.raw.lines
        assert lines[0] == "{"
        await pilot.press("slash")
        assert screen.focused is screen.query_one("#raw-search", Input)
        await pilot.press(*"cuda out")
        expected = [n for n, line in enumerate(lines) if "cuda out" in line.lower()]
        assert view.match_count == sum(line.lower().count("cuda out") for line in lines) >= 2
        first = view.current_match
        assert first is not None and first[0] == expected[0]
        top = round(view.scroll_y)
        assert top <= first[0] < top + view.scrollable_content_region.height
        assert _static_text(screen, "#raw-matches").startswith(f"1/{view.match_count}")
        await pilot.press("enter")
        assert view.current_index == 1
        assert screen.focused is view, "after enter the keys go to the view, not the query"
        await pilot.press("n")
        assert view.current_index == 2 % view.match_count
        assert screen.query_one("#raw-search", Input).value == "cuda out"
        await pilot.press("N", "N")
        assert view.current_index == 0
        screen.query_one("#raw-search", Input).value = "zzz-not-there"
        await pilot.pause()
        assert view.match_count == 0
        assert _static_text(screen, "#raw-matches") == "no matches"


async def test_escape_pops_the_inspector_back_to_the_main_screen():
    store, key, _ = create_experiment()
    app = InspectorHost(store, key)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, InspectorScreen), what="pop")
        assert app.screen.query_one("#main-placeholder", Static)


async def test_llenergymeasure_file_shows_what_it_has_and_no_empty_tabs():
    store, _, _ = create_experiment()
    key = create_lem(store)
    app = InspectorHost(store, key, verdict_provider=lambda r: ALIVE)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        assert _shown_tabs(screen) == {"overview", "processes", "runs", "history", "raw"}
        text = _overview_text(screen)
        assert LEM_ID in text and "meta-llama/Llama-3-8B" in text and "subprocess_pid" in text
        await pilot.press("2")
        assert _process_cells(screen.query_one("#process-table", ProcessTable), 1)[:3] == ["1", "● running", "1"]
        await pilot.press("3")
        assert _tabs(screen).active == "runs"
        runs = screen.query_one(RunTable)
        assert runs.keys == ["completed:cycle_0", "completed:cycle_1", "failed:cycle_2"]
        assert screen.focused is runs, "the number key hands the arrows to the tab's table"
        # The numbers count the tabs the bar shows: run and steps are hidden for llenergymeasure files.
        await pilot.press("4")
        assert _tabs(screen).active == "history"
        assert [r.change for r in screen.query_one(HistoryLog).entries] == ["mark-stale: running → interrupted"]
        assert not screen.query_one("#history-empty", Static).display
        await pilot.press("5")
        assert _tabs(screen).active == "raw"
        await pilot.press("6")
        assert _tabs(screen).active == "raw", "no sixth tab"


async def test_llenergymeasure_v2_file_has_no_processes_or_runs_tabs():
    store, _, _ = create_experiment()
    key = create_lem_v2(store)
    app = InspectorHost(store, key)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        assert _shown_tabs(screen) == {"overview", "history", "raw"}
        assert "running" in _static_text(screen, "#inspector-title")
        assert "(measuring)" in _static_text(screen, "#inspector-title")
        await pilot.press("2")
        assert _tabs(screen).active == "history"
        await wait_for(pilot, lambda: screen.query_one("#history-empty", Static).display, what="the empty history's note")
        assert "no history" in _static_text(screen, "#history-empty")


async def test_broken_file_shows_the_reason_and_the_raw_bytes():
    store, _, _ = create_experiment()
    key = create_broken(store)
    app = InspectorHost(store, key, verdict_provider=lambda r: ALIVE)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        assert _shown_tabs(screen) == {"overview", "raw"}
        text = _overview_text(screen)
        assert "not UTF-8 (byte 0xff at offset 54)" in text
        assert '"status": "runn\ufffd\ufffding",' in text
        await pilot.press("2")  # its second (and last) tab
        view = screen.query_one(RawJsonView)
        assert "\n".join(view.raw.lines) == BROKEN_BYTES.decode("utf-8", errors="replace")


async def test_live_follow_updates_sections_in_place():
    store, key, _ = create_experiment()
    app = InspectorHost(store, key, section=Section.RUNS, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        await pilot.press("7", "3")
        table = screen.query_one(RunTable)
        table.move_cursor_to_key("r-0002")
        raw_before = screen.query_one(RawJsonView).raw
        loads = screen.load_count

        def finish(doc: ExperimentDoc) -> ExperimentDoc:
            runs = list(doc.runs)
            runs[5] = runs[5].model_copy(update={"status": RunStatus.RUNNING, "current_step": "warmup"})
            return doc.model_copy(update={"runs": runs, "name": "energy sweep (resumed)"})

        store.update(key, finish)
        await wait_for(pilot, lambda: table.data.rows[5].status == "running", what="reload after write")
        await wait_for(pilot, lambda: screen.query_one(RawJsonView).raw is not raw_before, what="raw text")
        assert screen.load_count == loads + 1
        assert _tabs(screen).active == Section.RUNS.value
        assert table.cursor_key == "r-0002"
        assert "warmup" in table.data.rows[5].cells
        assert "energy sweep (resumed)" in _static_text(screen, "#inspector-title")
        assert "energy sweep (resumed)" in "\n".join(screen.query_one(RawJsonView).raw.lines)


async def test_a_deleted_file_shows_why_instead_of_crashing():
    store, key, _ = create_experiment()
    app = InspectorHost(store, key, poll_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        os.unlink(store.root / f"{key}.json")
        await wait_for(pilot, lambda: "no longer exists" in _overview_text(screen), what="gone notice")
        assert _shown_tabs(screen) == {"overview", "raw"}


async def test_polls_never_pile_up_while_a_read_is_slow():
    store, key, _ = create_experiment()
    release = threading.Event()
    calls: list[int] = []

    def slow_provider(record):
        calls.append(1)
        release.wait(5)
        return ALIVE

    app = InspectorHost(store, key, verdict_provider=slow_provider, poll_interval=0.01)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: bool(calls), what="first verdict call")
        for _ in range(10):
            await pilot.pause(0.02)
            running = [w for w in app.workers if w.group == "inspector-load" and not w.is_finished]
            assert len(running) <= 1
        assert len(calls) == 1
        release.set()
        await loaded(pilot)



async def test_hostile_text_from_files_is_shown_literally_and_never_reaches_the_terminal_raw():
    store, key, _ = create_experiment()

    def hostile(doc: ExperimentDoc) -> ExperimentDoc:
        runs = list(doc.runs)
        runs[0] = runs[0].model_copy(update={"params": {"batch_size": "[/bold]\x1b[31mred", "precision": "bf16"}})
        procs = dict(doc.processes)
        procs["1"] = procs["1"].model_copy(update={"error_message": "[/oops] \x1b]0;title\x07"})
        return doc.model_copy(update={"runs": runs, "processes": procs, "name": "[b]x[/c]"})

    store.update(key, hostile)
    write_journal(store, [JournalEntry("2026-03-14T09:29:00+00:00", "eve", "h", EXPERIMENT_ID, "resume", None, "running", "[/x] \x1b[2J")])
    app = InspectorHost(store, key, section=Section.RUNS)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        cells = screen.query_one(RunTable).data.rows[0].cells
        assert "[/bold]\\x1b[31mred" in cells
        assert "[b]x[/c]" in _static_text(screen, "#inspector-title")
        await pilot.press("2")
        error = _process_cells(screen.query_one("#process-table", ProcessTable), 1)[-1]
        assert error.startswith("[/oops]") and "\x1b" not in error and "\x07" not in error
        await pilot.press("6")
        assert screen.query_one(HistoryLog).entries[-1].why == "[/x] \x1b[2J"
        shown = screen.query_one(HistoryLog).get_row("6")[-1].plain
        assert shown == "[/x] \\x1b[2J"


async def test_a_big_file_shows_its_runs_before_validation_then_the_full_view(monkeypatch):
    store, key, _ = create_experiment()

    def many_runs(doc: ExperimentDoc) -> ExperimentDoc:
        template = doc.runs[0]
        runs = [
            template.model_copy(update={"id_run": f"b-{i:05d}", "index": i, "state": {"seed": i, "note": "x" * 300}})
            for i in range(1500)
        ]
        return doc.model_copy(update={"runs": [*doc.runs, *runs]})

    store.update(key, many_runs)
    assert (store.root / f"{key}.json").stat().st_size >= PREVIEW_BYTES
    previews: list[int] = []
    original = InspectorScreen._apply_preview

    def spy(self, snap, runs):
        previews.append(len(runs.table.rows))
        assert self.snapshot is None, "the preview comes before the validated read"
        original(self, snap, runs)

    monkeypatch.setattr(InspectorScreen, "_apply_preview", spy)
    app = InspectorHost(store, key, section=Section.RUNS)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        assert previews == [1506]
        table = screen.query_one(RunTable)
        assert table.total_rows == 1506 and screen.load_count == 1
        table.move_cursor_to_key("b-01499")
        table.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: _tabs(screen).active == Section.RUN.value, what="run tab")
        assert "b-01499" in _static_text(screen, "#run-header")


DEAD = StaleVerdict(Liveness.DEAD, "coordinator pid 4242 on gpu-node-7: no such process")


async def test_a_dead_owners_process_is_not_running_anywhere_in_the_inspector():
    """The running process of a stale experiment: dead in Processes, "last step" in Steps, elapsed stopped."""
    store, key, _ = create_experiment()
    app = InspectorHost(store, key, section=Section.PROCESSES, verdict_provider=lambda record: DEAD)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        table = screen.query_one("#process-table", ProcessTable)
        await wait_for(pilot, lambda: _process_cells(table, 0)[1] == "† dead", what="the dead process")
        cells = _process_cells(table, 0)
        assert "last: " in " ".join(cells) and "● running" not in cells
        await screen.show_section(Section.STEPS)
        await wait_for(pilot, lambda: len([p for p in screen.query(StepSource) if p.is_mounted]) == 3, what="step panels")
        panels = {p.view.name: p for p in screen.query(StepSource)}
        assert panels["measure"].view.running_in == ()
        assert panels["measure"].view.last_in == ("process 0 (dead)",)
        assert not panels["measure"].has_class("-running")
        title = _static_text(screen, "#inspector-title")
        assert "STALE (running, owner dead)" in title and "  running" not in title, title
        await pilot.press("3")
        runs = screen.query_one(RunTable)
        statuses = [_run_status(runs, key) for key in runs.keys]
        assert "dead" in statuses and "running" not in statuses, statuses
        running = next(key for key in runs.keys if _run_status(runs, key) == "dead")
        runs.move_cursor_to_key(running)
        runs.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: _tabs(screen).active == "run", what="the run's tab")
        header = _static_text(screen, "#run-header")
        assert "  dead" in header and "running" not in header, header


async def test_a_live_owners_title_says_running():
    store, key, _ = create_experiment()
    app = InspectorHost(store, key, verdict_provider=lambda record: ALIVE)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        await wait_for(pilot, lambda: screen.extras is not None, what="the verdict")
        title = _static_text(screen, "#inspector-title")
        assert "running" in title and "STALE" not in title, title
        await pilot.press("3")
        runs = screen.query_one(RunTable)
        await wait_for(pilot, lambda: bool(runs.keys), what="the runs")
        assert "running" in [_run_status(runs, key) for key in runs.keys]


async def test_without_a_verdict_a_recorded_running_process_is_unknown():
    store, key, _ = create_experiment()
    app = InspectorHost(store, key, section=Section.PROCESSES)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot)
        table = screen.query_one("#process-table", ProcessTable)
        assert _process_cells(table, 0)[1] == "? unknown"
