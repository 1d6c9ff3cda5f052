"""The inspector screen: its tabs, its loading worker, and keeping them live while it is open.

A thread worker reads the file once (the raw bytes and the parsed model come
from the same read). For a big expwatch file it first posts the runs table,
built from the plain decoded JSON, and lets that frame draw before the slower
validation (which holds the GIL); then it posts the validated read (Overview,
Processes, Runs, Run), then the rest (the raw text split for display, the
owner verdict, the journal, the step sources compared with the files on
disk). Only the first tab's content is composed; the others mount when first
shown. A timer starts a worker that polls the file's version with ``os.stat``,
never while another runs; on a change everything is re-read and the sections
are updated in place, keeping the selected tab, the runs cursor and the
tree's expanded nodes.

The screen knows nothing of runtime/: the app passes the verdict and the
resume command as callables, which run in the worker. It reads through a
``SnapshotReader``: a state directory's store is wrapped in one, and a source
of another kind (an MLtraq database) hands its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState, get_current_worker

from app.screens.confirm import HelpScreen
from app.screens.inspector.overview import overview_sections
from app.screens.inspector.run_detail import exception_content, run_header
from app.screens.inspector.runs import RunsView, runs_table, runs_view
from app.screens.inspector.sections import SECTION_TITLES, Section, visible_sections
from app.screens.inspector.styles import MUTED, STATUS_STYLE, status_content
from state.inspection import (
    Extras,
    ResumeCommand,
    RunsJson,
    Snapshot,
    SnapshotReader,
    StepView,
    StoreSnapshotReader,
    VerdictProvider,
    collector_paused,
)
from state.store import StateStore
from state.text import printable
from state.process_state import shown_running
from state.verdict import is_stale
from widgets.field_tree import FieldTree
from widgets.history_log import HistoryLog
from widgets.overview_panel import OverviewPanel
from widgets.process_table import ProcessTable
from widgets.raw_json import RawJsonView, RawText
from widgets.run_table import RunTable, RunTableData
from widgets.safe_text import safe_content
from widgets.step_source import StepSource

Clock = Callable[[], datetime]


def _running_runs_as(snap: Snapshot, extras: Extras | None, judged: bool) -> str | None:
    """What the runs a file calls running are, as far as the evidence goes (None: running, its owner
    proven alive). A reader with no verdict at all (a hub's: the main table has it) shows the file's word."""
    record = snap.record
    if record is None:
        return "stopped"
    if not judged and record.status == "running":
        return None
    verdict = extras.verdict if extras is not None else None
    shown = shown_running(record.status, verdict.liveness if verdict is not None else None)
    return None if shown == "running" else shown

NARROW_WIDTH = 120

INSPECTOR_KEYS = (
    ("1-7", "the tabs as the bar shows them (" + ", ".join(SECTION_TITLES.values()) + "; a file has only some)"),
    ("tab", "next widget (the tab bar, the table, the search box)"),
    ("↑/↓ j/k", "move or scroll (PgUp/PgDn, Home/End)"),
    ("←/→", "scroll a table sideways"),
    ("enter", "on Runs: open the run in the Run tab"),
    ("/", "filter the runs; on Raw, search the file"),
    ("n / N", "on Raw, after enter: next / previous match"),
    ("r", "read the file again now (it follows changes by itself)"),
    ("esc", "back to the experiments"),
    ("?", "this help"),
    ("q", "quit"),
)

#: Seconds between re-judging the owner and re-reading the journal and step files
#: when the experiment file itself has not changed.
EXTRAS_INTERVAL_S = 5.0
#: How long the worker lets the first frame draw before validating (validation holds the GIL).
PREVIEW_FRAME_WAIT_S = 0.5


class InspectorScreen(Screen[None]):
    """Everything one experiment file holds, in tabs, following the file while open."""

    CSS_PATH = "inspector.tcss"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("1", "show_section(1)", "Tabs", key_display="1-7"),
        *(Binding(str(n), f"show_section({n})", s.name.title(), show=False) for n, s in enumerate(Section, 1) if n > 1),
        Binding("slash", "find", "Find"),
        Binding("r", "reload", "Reload"),
        Binding("question_mark", "help", "Help"),
    ]

    class Loaded(Message):
        """A fresh read of the file and its runs table (posted from the worker thread).

        ``drawn`` (previews only) is set once the screen has refreshed with it.
        """

        def __init__(self, snapshot: Snapshot, runs: RunsView | None, drawn: threading.Event | None = None) -> None:
            super().__init__()
            self.snapshot = snapshot
            self.runs = runs
            self.drawn = drawn

    class ExtrasLoaded(Message):
        """Verdict, journal, step checks, and the raw text when it changed (posted from the worker thread)."""

        def __init__(self, extras: Extras, raw: RawText | None) -> None:
            super().__init__()
            self.extras = extras
            self.raw = raw

    def __init__(
        self,
        source: StateStore | SnapshotReader,
        key: str,
        *,
        verdict_provider: VerdictProvider | None = None,
        resume_command: ResumeCommand | None = None,
        now: Clock | None = None,
        poll_interval: float = 1.0,
        section: Section | str = Section.OVERVIEW,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        if isinstance(source, StateStore):
            source = StoreSnapshotReader(source, verdict_provider, resume_command)
        self.reader: SnapshotReader = source
        self.key = key
        self.verdict_provider = verdict_provider
        self.resume_command = resume_command
        self.now: Clock = now or (lambda: datetime.now().astimezone())
        self.poll_interval = poll_interval
        self.initial_section = Section(section)
        self.snapshot: Snapshot | None = None
        self.runs: RunsView | None = None
        self.extras: Extras | None = None
        self.raw: RawText | None = None
        self.selected_run: str | None = None
        self.load_count = 0
        self._loader: Worker[Snapshot | None] | None = None
        self._extras_at = 0.0
        self._shown: set[Section] | None = None
        self._ready: set[Section] = set()
        """Tabs whose content is mounted."""

    # -- layout ---------------------------------------------------------------
    def compose(self) -> ComposeResult:
        """All tabs, but only the first one's content: the others mount when first shown."""
        yield Static(Content.styled(f"loading {printable(self.key)}…", MUTED), id="inspector-title")
        with TabbedContent(initial=self.initial_section.value, id="sections"):
            for section in Section:
                with TabPane(SECTION_TITLES[section], id=section.value):
                    if section is self.initial_section:
                        yield from self._section_widgets(section)
        self._ready.add(self.initial_section)
        yield Footer(compact=True)

    def _section_widgets(self, section: Section) -> list[Widget]:
        if section is Section.OVERVIEW:
            return [VerticalScroll(OverviewPanel(id="overview-panel"), id="overview-scroll")]
        if section is Section.PROCESSES:
            table = ProcessTable(clock=self.now, detail=True, focusable=True, id="process-table")
            table.choose_columns([c.key for c in table.columns])  # every column; ←/→ scroll what does not fit
            return [table]
        if section is Section.RUNS:
            bar = Horizontal(
                Input(placeholder="filter runs: status, id, params… (/)", id="run-filter"),
                Static(id="run-count"),
                id="runs-bar",
            )
            return [bar, RunTable(id="run-table")]
        if section is Section.RUN:
            exception = VerticalScroll(Static(id="run-exception"), id="run-exception-scroll")
            return [Static(id="run-header"), Horizontal(FieldTree(id="run-fields"), exception, id="run-body")]
        if section is Section.STEPS:
            return [VerticalScroll(id="step-list")]
        if section is Section.HISTORY:
            note = Static(Content.styled("no history: the file keeps none, and expwatch's journal has no line for it",
                                         f"italic {MUTED}"), id="history-empty", classes="empty-note")
            note.display = False
            return [note, HistoryLog(id="history-log")]
        bar = Horizontal(Input(placeholder="search the file (/)", id="raw-search"), Static(id="raw-matches"), id="raw-bar")
        return [bar, RawJsonView(id="raw-view")]

    async def _ensure_section(self, section: Section) -> None:
        """Mount a tab's content the first time it is shown, filled from the current read."""
        if section in self._ready:
            return
        self._ready.add(section)
        await self.query_one(f"#{section.value}", TabPane).mount_all(self._section_widgets(section))
        self._fill(section)

    @on(TabbedContent.TabActivated, "#sections")
    async def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id:
            await self._ensure_section(Section(event.pane.id))

    async def show_section(self, section: Section) -> None:
        """Switch to a tab (if the file has it), its content mounted."""
        if self._shown is not None and section not in self._shown:
            return
        self.query_one(TabbedContent).active = section.value
        await self._ensure_section(section)

    def _fill(self, section: Section) -> None:
        """Show the current read (and extras) in one mounted tab; each widget skips unchanged data."""
        snap, extras = self.snapshot, self.extras
        if section is Section.OVERVIEW and snap is not None:
            self._render_overview(snap)
        elif section is Section.PROCESSES and snap is not None:
            verdict = extras.verdict if extras is not None else None
            self.query_one(ProcessTable).show(snap.processes, record=snap.record, verdict=verdict)
        elif section is Section.RUNS and snap is not None:
            table = self.query_one(RunTable)
            table.set_running_as(_running_runs_as(snap, extras, self.verdict_provider is not None))
            table.set_data(self.runs.table if self.runs else RunTableData())
            self._update_run_count()
        elif section is Section.RUN:
            self._render_run_detail()
        elif section is Section.STEPS and extras is not None:
            self._apply_steps(extras.steps)
        elif section is Section.HISTORY and extras is not None:
            self.query_one(HistoryLog).set_rows(extras.history)
            self.query_one("#history-empty", Static).display = not extras.history
        elif section is Section.RAW and self.raw is not None:
            view = self.query_one(RawJsonView)
            if view.raw is not self.raw:
                view.set_raw(self.raw)

    def on_resize(self) -> None:
        # Narrow: the Run tab stacks the fields over the traceback, which then gets the full width.
        self.set_class(self.size.width < NARROW_WIDTH, "-narrow")

    def on_mount(self) -> None:
        self._fill(self.initial_section)
        self._start_load(force=True)
        self.set_interval(self.poll_interval, self._poll)

    # -- loading --------------------------------------------------------------
    @property
    def loading_now(self) -> bool:
        """Whether a read of the file is in progress."""
        return self._loader is not None and not self._loader.is_finished

    def _poll(self) -> None:
        if Section.PROCESSES in self._ready:
            self.query_one(ProcessTable).refresh_if_changed()
        self._start_load(force=False)

    def _start_load(self, *, force: bool) -> bool:
        """Start a read unless one is running (polls never pile up)."""
        if self.loading_now:
            return False
        extras_due = force or time.monotonic() - self._extras_at >= EXTRAS_INTERVAL_S
        # The last worker's read, even if its message is still queued: never read twice for one change.
        previous = self._loader.result if self._loader is not None else None
        self._loader = self._load(previous or self.snapshot, force, extras_due)
        return True

    @work(thread=True, exit_on_error=False, group="inspector-load", description="read the experiment file")
    def _load(self, previous: Snapshot | None, force: bool, extras_due: bool) -> Snapshot | None:
        """Read the file if it changed (or ``force``), then the extras if due; returns the read it used."""
        worker = get_current_worker()
        snap = previous
        changed = force or previous is None or self.reader.changed(previous)
        if changed:
            built: tuple[RunsJson, RunTableData] | None = None

            def preview(early: Snapshot) -> bool:
                nonlocal built
                assert early.runs_json is not None
                built = (early.runs_json, runs_table(early.runs_json))
                drawn = threading.Event()
                self.post_message(self.Loaded(early, RunsView(built[1]), drawn))
                drawn.wait(PREVIEW_FRAME_WAIT_S)
                return not worker.is_cancelled

            with collector_paused():
                snap = self.reader.read(self.key, on_preview=preview if previous is None else None)
                runs = runs_view(snap, built)
            if worker.is_cancelled:
                return snap
            self.post_message(self.Loaded(snap, runs))
        elif not extras_due:
            return snap
        assert snap is not None
        text_changed = previous is None or snap.text != previous.text
        raw = RawText.from_text(snap.text) if text_changed else None
        extras = self.reader.extras(snap)
        if not worker.is_cancelled:
            self.post_message(self.ExtrasLoaded(extras, raw))
        return snap

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is self._loader and event.state is WorkerState.ERROR:
            error = event.worker.error
            self.query_one("#inspector-title", Static).update(
                safe_content(Content.styled(f"reading {self.key} failed: {type(error).__name__}: {error}", "bold $text-error"))
            )

    def on_inspector_screen_loaded(self, message: Loaded) -> None:
        if message.snapshot.preview:
            self._apply_preview(message.snapshot, message.runs)
            if message.drawn is not None:
                self.call_after_refresh(message.drawn.set)
            return
        self.snapshot = message.snapshot
        self.runs = message.runs
        self.load_count += 1
        self._apply_snapshot(message.snapshot)

    def on_inspector_screen_extras_loaded(self, message: ExtrasLoaded) -> None:
        self.extras = message.extras
        if message.raw is not None:
            self.raw = message.raw
        self._extras_at = time.monotonic()
        if self.snapshot is not None:
            self._update_title(self.snapshot)  # the verdict came: a running file whose owner is dead reads STALE
        for section in (Section.OVERVIEW, Section.PROCESSES, Section.RUNS, Section.RUN, Section.STEPS, Section.HISTORY, Section.RAW):
            if section in self._ready:
                self._fill(section)

    # -- applying a read ------------------------------------------------------
    def _apply_snapshot(self, snap: Snapshot) -> None:
        self._update_title(snap)
        self._update_sections(visible_sections(snap))
        for section in (Section.OVERVIEW, Section.PROCESSES, Section.RUNS, Section.RUN):
            if section in self._ready:
                self._fill(section)

    def _apply_preview(self, snap: Snapshot, runs: RunsView | None) -> None:
        if self.snapshot is not None or Section.RUNS not in self._ready:
            return
        self.query_one(RunTable).set_data(runs.table if runs else RunTableData())
        self._update_run_count()
        total = len(runs.table.rows) if runs else 0
        reading = f"reading {snap.path.name} ({snap.size / 1e6:.1f} MB, {total:,} runs)…"
        self.query_one("#inspector-title", Static).update(Content.styled(reading, MUTED))

    def _update_title(self, snap: Snapshot) -> None:
        title = self.query_one("#inspector-title", Static)
        if snap.model is None:
            title.update(safe_content(Content.assemble((snap.key, "bold"), "  ", ("unreadable", "bold $text-error"), ("  " + snap.path.name, MUTED))))
            return
        record = snap.record
        assert record is not None
        verdict = self.extras.verdict if self.extras is not None else None
        parts: list[Content | str | tuple[str, str]] = [(snap.model.experiment_id, "bold"), "  "]
        if is_stale(record.status, verdict):  # as the main table says it: never more alive than the verdict
            parts += [("STALE", STATUS_STYLE["failed"]), (" (running, owner dead)", MUTED)]
        else:
            parts.append(status_content(record.status))
        if record.raw_status and record.raw_status != record.status:
            parts.append((f" ({record.raw_status})", MUTED))
        if record.label:
            parts.append("  " + record.label)
        parts.append((f"  {snap.path.name} · {snap.format.value if snap.format else ''}", MUTED))
        title.update(safe_content(Content.assemble(*parts)))

    def _update_sections(self, shown: set[Section]) -> None:
        if shown == self._shown:
            return
        self._shown = shown
        tabs = self.query_one(TabbedContent)
        for section in Section:
            if section in shown:
                tabs.show_tab(section.value)
            else:
                tabs.hide_tab(section.value)
        if Section(tabs.active or Section.OVERVIEW.value) not in shown:
            tabs.active = Section.OVERVIEW.value

    def _render_overview(self, snap: Snapshot) -> None:
        if Section.OVERVIEW not in self._ready:
            return
        sections = overview_sections(
            snap, self.extras, now=self.now(), base=self.reader.base, has_verdict=self.verdict_provider is not None
        )
        self.query_one(OverviewPanel).show(sections)

    def _update_run_count(self) -> None:
        if Section.RUNS not in self._ready:
            return
        table = self.query_one(RunTable)
        total = table.total_rows
        text = f"{total:,} runs" if not table.filter_text else f"{table.row_count:,} of {total:,} runs"
        self.query_one("#run-count", Static).update(text)

    def _render_run_detail(self) -> None:
        if Section.RUN not in self._ready:
            return
        snap = self.snapshot
        header = self.query_one("#run-header", Static)
        tree = self.query_one(FieldTree)
        exception = self.query_one("#run-exception", Static)
        run = self.runs.run(snap, self.selected_run) if self.runs is not None and self.selected_run else None
        self.query_one("#run-body").display = run is not None
        if run is None:
            hint = "select a run in Runs (Enter) to see its fields, params, state and exception"
            if self.selected_run:
                hint = f"run {printable(self.selected_run)} is no longer in the file"
            header.update(Content.styled(hint, f"italic {MUTED}"))
            tree.show_sections(())
            exception.update("")
            return
        doc = snap.doc if snap else None
        running_as = _running_runs_as(snap, self.extras, self.verdict_provider is not None) if snap is not None else None
        header.update(safe_content(run_header(run, running_as)))
        tree.show_sections(
            [("params", run.params), ("fields", run.fields), ("state", run.state), ("config", doc.config if doc else {})],
            expand=("params", "fields", "state", "config"),
        )
        exception.update(safe_content(exception_content(run)))

    def _apply_steps(self, views: Sequence[StepView]) -> None:
        container = self.query_one("#step-list", VerticalScroll)
        panels = list(container.query_children(StepSource))
        if panels and len(panels) == len(views):
            for panel, view in zip(panels, views):
                panel.update(view)
            return
        if not views and not panels and container.query_children(".empty-note"):
            return
        container.remove_children()
        if views:
            container.mount_all([StepSource(view) for view in views])
        else:
            container.mount(Static(Content.styled("no steps recorded", f"italic {MUTED}"), classes="empty-note"))

    # -- interaction ------------------------------------------------------------
    @on(Input.Changed, "#run-filter")
    def _filter_runs(self, event: Input.Changed) -> None:
        self.query_one(RunTable).set_filter(event.value)
        self._update_run_count()

    @on(Input.Submitted, "#run-filter")
    def _filter_done(self) -> None:
        self.query_one(RunTable).focus()

    @on(RunTable.RowChosen, "#run-table")
    async def _open_run(self, event: RunTable.RowChosen) -> None:
        snap = self.snapshot
        run_id = str(event.key)
        if self.runs is None or self.runs.run(snap, run_id) is None:
            return
        self.selected_run = run_id
        await self.show_section(Section.RUN)
        self._render_run_detail()

    @on(Input.Changed, "#raw-search")
    def _search_raw(self, event: Input.Changed) -> None:
        self.query_one(RawJsonView).search(event.value)

    @on(Input.Submitted, "#raw-search")
    def _next_raw_match(self) -> None:
        """Enter goes to the next match and hands the keys to the view, so ``n``/``N`` go on from there."""
        view = self.query_one(RawJsonView)
        view.action_next_match()
        view.focus()

    @on(RawJsonView.SearchMoved)
    def _show_match(self, event: RawJsonView.SearchMoved) -> None:
        label = self.query_one("#raw-matches", Static)
        if not event.view.query:
            label.update("")
        elif not event.count:
            label.update(Content.styled("no matches", "$text-warning"))
        else:
            line, _ = event.view.current_match or (0, 0)
            label.update(f"{(event.index or 0) + 1}/{event.count:,}  line {line + 1:,}")

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(INSPECTOR_KEYS, False, title="inspector keys"))

    def action_reload(self) -> None:
        self._start_load(force=True)

    async def action_show_section(self, number: int) -> None:
        """The ``number``-th tab this file has, counted as the tab bar shows them; the keys go to its table."""
        sections = [s for s in Section if self._shown is None or s in self._shown]
        if 1 <= number <= len(sections):
            section = sections[number - 1]
            await self.show_section(section)
            self._focus_section(section)

    def _focus_section(self, section: Section) -> None:
        """The arrows and Enter to the tab's own table or view (not its search box), as a click would."""
        try:
            pane = self.query_one(f"#{section.value}", TabPane)
        except Exception:  # noqa: BLE001 - not mounted (a file without that tab)
            return
        target = next((w for w in pane.query("*") if w.focusable and not isinstance(w, Input)), None)
        if target is not None:
            target.focus()

    async def action_find(self) -> None:
        """``/``: the runs filter, or the raw search on the Raw tab (or when there are no runs)."""
        active = self.query_one(TabbedContent).active
        shown = self._shown or set()
        if Section.RUNS in shown and (active == Section.RUNS.value or active != Section.RAW.value):
            await self.show_section(Section.RUNS)
            self.query_one("#run-filter", Input).focus()
        elif Section.RAW in shown:
            await self.show_section(Section.RAW)
            self.query_one("#raw-search", Input).focus()

