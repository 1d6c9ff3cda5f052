"""The main screen: experiments over the selected one's processes, GPU and device panels.

It draws the board and nothing else: ``show(redraw)`` updates just the rows the
board says changed; the order (filter and sort, computed by the board) is asked
for again only when rows came, went or may have moved, and at most about a fifth
of the time when that gets costly (a first scan of 100,000 files). Keys that
change anything are handed to the App, which plans them in workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input

from state.board import ALL_SORTS, SORTS, Board, BoardRow, Redraw
from state.record import ExperimentRecord
from state.text import printable
from widgets.device_panel import DevicePanel, ages_change_in
from widgets.experiment_table import ExperimentTable
from widgets.gpu_panel import GpuPanel
from widgets.key_footer import KeyFooter
from widgets.process_table import ProcessTable
from widgets.status_header import StatusHeader

from app.messages import GpuSampled

if TYPE_CHECKING:
    from app.app import ExpwatchApp

ORDER_SECONDS = 0.25
#: The devices' ages are drawn again when their text changes: at the latest after this long, a little after the change.
AGES_MAX_SECONDS = 60.0
AGES_LATE_SECONDS = 0.01

KEY_HELP = (
    ("↑/↓ j/k", "move (PgUp/PgDn, Home/End)"),
    ("←/→ h/l", "scroll sideways when the chosen columns do not fit"),
    ("enter", "inspect the experiment (esc comes back)"),
    ("/", "filter by id, name or status (esc clears)"),
    ("s", "cycle the sort: " + ", ".join(SORTS)),
    ("click", "a column's header sorts by it, again reverses (▲/▼ marks it)"),
    ("c", "choose the columns (+N› in the header: N hidden by the width)"),
    ("R", "resume (shows the dry run first; f retries failed runs too)"),
    ("S", "mark stale (only when the owner is dead)"),
    ("K", "stop: SIGINT to its runner (stops at a run boundary); again after the grace: SIGTERM"),
    ("C", "clean up: mark every dead running experiment stale"),
    ("g / d", "show or hide the GPU / device panel"),
    ("tab", "to the GPU / device panel: ↑/↓ PgUp/PgDn or the wheel scroll it"),
    ("ctrl+p", "command palette: every action, sorts and panels"),
    ("?", "this help"),
    ("q", "quit"),
)

MUTATING_ACTIONS = frozenset({"resume", "mark_stale", "stop", "cleanup"})
#: The keys of ``KEY_HELP`` that change something: an observer's help does not list them.
MUTATING_KEYS = frozenset({"R", "S", "K", "C"})

#: The board's sort for each column of the experiments table.
SORT_OF_COLUMN = {"age": "updated", **{mode: mode for mode in ALL_SORTS if mode != "updated"}}
COLUMN_OF_SORT = {mode: column for column, mode in SORT_OF_COLUMN.items()}
#: Rows the process panel may take: its content, up to this share of the screen.
PROCESS_SHARE = 0.3
#: The GPU panel takes the width its lines want (they are fitted to it), leaving the device
#: panel at least its minimum; the device panel takes the rest.
GPU_PANEL_MIN = 46
DEVICE_PANEL_MIN = 34
#: The table's least height (``#experiments`` in expwatch.tcss).
TABLE_MIN = 5
#: The GPU and device panels' height cap (``#panels`` in expwatch.tcss; 6 on short screens).
PANELS_MAX = 10
PANELS_MAX_SHORT = 6


class MainScreen(Screen[None]):
    # The footer shows the keys that matter (it fits 80 columns); ? lists them all.
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("enter", "inspect", "Inspect"),
        Binding("R", "resume", "Resume"),
        Binding("S", "mark_stale", "Stale"),
        Binding("K", "stop", "Stop"),
        Binding("C", "cleanup", "Clean up"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "app.quit", "Quit"),
        Binding("s", "cycle_sort", "Sort", show=False),
        Binding("c", "choose_columns", "Columns", show=False),
        Binding("g", "toggle_gpus", "GPUs", show=False),
        Binding("d", "toggle_devices", "Devices", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, board: Board, *, location: str, read_only: bool, gpus: bool, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.board = board
        self.location = location
        self.read_only = read_only
        self.gpus = gpus
        self.clock = clock
        self.scanning = True
        self.loaded = False
        #: Composed and mounted: its widgets can be drawn (messages may come before).
        self._ready = False
        self.failure: str | None = None
        #: What the sources say of their health (a hub away, or back empty), with the age of the picture kept.
        self.sources_status = ""
        self._order_dirty = False
        self._order_cost = 0.0
        self._order_done_at = 0.0
        self._order_timer: Timer | None = None
        #: Draws the devices again when one of their ages would read differently.
        self._devices_timer: Timer | None = None
        #: The filter box, once the first ``/`` mounted it.
        self._filter_box: Input | None = None

    @property
    def expwatch(self) -> ExpwatchApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        # The filter box is mounted on first use (``action_filter``): hidden from the start, it
        # still cost the first frame its compose, its CSS and a focus change.
        yield StatusHeader(self.location, read_only=self.read_only, id="header")
        with Vertical(id="main"):
            yield ExperimentTable(clock=self.clock, show_source=self.board.several_sources, hosts=self.expwatch.shows_hosts, id="experiments")
            yield ProcessTable(clock=self.clock, id="processes")
            with Horizontal(id="panels"):
                yield GpuPanel(id="gpus")
                yield DevicePanel(id="devices")
        yield KeyFooter()

    def on_mount(self) -> None:
        if not self.gpus:
            self.query_one(GpuPanel).display = False
        self.table.focus()
        # Paused while nothing waits for it (one wake-up fewer 4 times a second when idle).
        self._order_timer = self.set_interval(ORDER_SECONDS, self._order_tick, pause=True)
        # Rows that arrived before the screen was up are drawn now.
        self._ready = True
        self.loaded = self.loaded or len(self.board) > 0
        self.redraw_all()
        self._show_failure()
        # After the first layout (the panel fits its text to its width), the latest sample then.
        self.call_after_refresh(self._show_latest_gpus)
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def on_unmount(self) -> None:
        self._ready = False

    @property
    def ready(self) -> bool:
        """Mounted and not being taken down: the app's shutdown stops it running before it removes this
        screen's widgets, and a message handled meanwhile (a late scan's rows) must not look for them."""
        return self._ready and self.app.is_running

    def on_resize(self) -> None:
        self.set_class(self.size.height < 30, "-short")
        self._fit_panels()
        self.refresh(layout=True)

    def _fit_panels(self) -> None:
        """Share space by content: the process panel gets the rows its processes need (up to a
        share of the screen), the GPU panel the width its lines need, the device panel the rest.
        When the experiments' rows leave height over even with the panels at their cap, the GPU
        and device panels may grow into it to show every line they have (a fleet's GPUs), and
        what they do not need stays with the table, where new experiments appear. Until the
        first rows (or the scan's end) the screen is not roomy: an empty table would make it so,
        and taking the class away again restyled every widget of the screen before the first
        rows showed."""
        processes = self.query_one(ProcessTable)
        cap = max(4, int(self.size.height * PROCESS_SHARE))
        processes.styles.height = min(cap, max(3, processes.row_count + 2))
        table = self.table
        table_rows = max(TABLE_MIN, table.virtual_size.height + table.scrollbar_size_horizontal)
        panels_shown = self.query_one("#panels").display
        left = self._main_height - table_rows - processes.styles.height.value
        roomy = self.loaded and panels_shown and self._panels_cap < left
        self.set_class(roomy, "-roomy")
        self.query_one("#panels").styles.max_height = left if roomy else None
        gpus = self.query_one(GpuPanel)
        if self.query_one(DevicePanel).display:
            gpus.styles.width = max(GPU_PANEL_MIN, min(gpus.wanted_width, self.size.width - DEVICE_PANEL_MIN))
        else:
            gpus.styles.width = "1fr"

    @property
    def _panels_cap(self) -> int:
        return PANELS_MAX_SHORT if self.has_class("-short") else PANELS_MAX

    @property
    def _main_height(self) -> int:
        """The height under the header and the filter, above the footer (the table's and the panels')."""
        above = sum(w.outer_size.height for w in (self.query_one(StatusHeader), self._filter_box) if w is not None and w.display)
        return self.size.height - above - self.query_one(KeyFooter).outer_size.height

    @property
    def table(self) -> ExperimentTable:
        return self.query_one(ExperimentTable)

    # -- drawing the board --------------------------------------------------------------
    def redraw_all(self) -> None:
        self._apply_order()
        self._show_devices()

    def show(self, redraw: Redraw) -> None:
        """Draw what one board change changed."""
        if redraw.devices:
            self._show_devices()
        if redraw.membership and self.loaded:
            # Rows that come or go show at once unless reordering is busy; mere moves wait for the tick.
            self._request_order()
        elif redraw.membership or redraw.moved:
            self._order_dirty = True
            self._wake_order_tick()
        if redraw.counts:
            self._update_header()
        if redraw.changed:
            self.table.update_rows(redraw.changed)
            if self.table.cursor_key in redraw.changed:
                self._show_selected()

    def first_rows_ready(self) -> None:
        """The first batch is in: draw rows now, even while the scan goes on."""
        self.loaded = True
        if self.ready:
            self._apply_order()
            self._fit_panels()

    def scan_finished(self) -> None:
        self.scanning = False
        self.loaded = True
        self._order_dirty = False
        if self.ready:
            self._apply_order()
            self._fit_panels()

    def show_failure(self, text: str) -> None:
        """A source or worker failed: say so where an empty table would otherwise look plausible."""
        self.failure = text
        if self.ready:
            self._show_failure()

    def show_sources_status(self, text: str) -> None:
        """The header says while rows are a source's last good picture (a hub out of reach, or back empty)."""
        if text != self.sources_status:
            self.sources_status = text
            self._update_header()

    def _show_failure(self) -> None:
        self.table.empty_text = self._empty_text()
        self.table.refresh()
        self._update_header()

    def _order_tick(self) -> None:
        if self._order_dirty:
            self._request_order()
        if not self._order_dirty and self._order_timer is not None:
            self._order_timer.pause()

    def _request_order(self) -> None:
        """Reorder now, or later when the last reorder was costly (at most ~20% of the time)."""
        since = time.perf_counter() - self._order_done_at
        if since >= max(ORDER_SECONDS, 4 * self._order_cost):
            self._order_dirty = False
            started = time.perf_counter()
            self._apply_order()
            self._order_done_at = time.perf_counter()
            self._order_cost = self._order_done_at - started
        else:
            self._order_dirty = True
            self._wake_order_tick()

    def _wake_order_tick(self) -> None:
        if self._order_timer is not None:
            self._order_timer.resume()

    def _apply_order(self) -> None:
        self.table.empty_text = self._empty_text()
        self.table.replace_rows(self.board.rows, self.board.order(self.clock()))
        self.table.show_sort(COLUMN_OF_SORT.get(self.board.sort_mode), self.board.sort_reverse)
        self._update_header()
        self._show_selected()

    def _empty_text(self) -> str:
        """What an empty table means: a failure, a filter that hides every row, or nothing there yet."""
        if self.failure is not None:
            return f"could not read: {self.failure}"
        if self.board.filter_text and len(self.board):
            return f"nothing matches the filter {self.board.filter_text!r} ({len(self.board)} hidden): esc clears it"
        if self.scanning:
            return "scanning…"
        return "no experiments in these sources (yet)" if self.board.several_sources else "no experiments in this directory (yet)"

    def _update_header(self) -> None:
        note = "scanning…" if self.scanning else ""
        if self.board.filter_text:
            note = f"filter: {self.board.filter_text!r} ({self.table.row_count} shown)"
        if self.failure:
            note = f"{note}  ERROR: {self.failure}".strip()
        if self.sources_status:
            note = f"{note}  {self.sources_status}".strip()
        self.query_one(StatusHeader).show_counts(self.board.visible_counts, note)

    def _show_devices(self) -> None:
        """The devices as published, drawn again when one of their ages would read differently."""
        snapshots, errors = self.board.all_devices()
        now = self.clock()
        self.query_one(DevicePanel).show(snapshots, errors, now)
        if self._devices_timer is not None:
            self._devices_timer.stop()
            self._devices_timer = None
        due = ages_change_in(snapshots, now)
        if due is not None:
            self._devices_timer = self.set_timer(min(due, AGES_MAX_SECONDS) + AGES_LATE_SECONDS, self._show_devices)

    def _theme_changed(self, _theme: object) -> None:
        """The panels' lines carry the theme's colours: draw them again (a GPU sample that shows
        nothing new is never posted, so none would come to do it)."""
        self._show_devices()
        self._show_latest_gpus()

    def _show_latest_gpus(self) -> None:
        if self.expwatch.latest_gpus is not None:
            self.show_gpus(self.expwatch.latest_gpus)

    def show_gpus(self, message: GpuSampled) -> None:
        panel = next(iter(self.query(GpuPanel)), None)
        if panel is None:
            return  # a sample that came while the app shuts down, after the screen's widgets went
        wanted = panel.wanted_width
        panel.show(message.snapshot, message.history, message.attributions, message.fleet)
        if panel.wanted_width != wanted:
            self._fit_panels()

    # -- selection --------------------------------------------------------------------------
    @property
    def selected_key(self) -> str | None:
        key = self.table.cursor_key
        return key if isinstance(key, str) else None

    def _acted_on(self) -> str | None:
        """The selected key, which the cursor now keeps through re-sorts: acting on a row (even the
        top one the cursor started on) places the cursor, so a row that moves after the action
        (marked stale, resumed) is still the selected one, never whichever row took its place."""
        key = self.selected_key
        if key is not None:
            self.table.cursor_placed = True
        return key

    @property
    def selected_row(self) -> BoardRow | None:
        key = self.selected_key
        return self.board.get(key) if key is not None else None

    @on(ExperimentTable.CursorMoved, "#experiments")
    def _cursor_moved(self, event: ExperimentTable.CursorMoved) -> None:
        self._show_selected()

    def _show_selected(self) -> None:
        row = self.selected_row
        processes = self.query_one(ProcessTable)
        if row is not None and isinstance(row.entry, ExperimentRecord):
            processes.show(row.entry.processes, record=row.entry, verdict=row.verdict)
            processes.border_title = Content(f"processes of {printable(row.entry.experiment_id)}")
        else:
            processes.show(())
            processes.border_title = "processes"
        if self.ready:
            self._fit_panels()

    @on(ExperimentTable.RowChosen, "#experiments")
    def _row_chosen(self, event: ExperimentTable.RowChosen) -> None:
        self.action_inspect()

    # -- keys -----------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in MUTATING_ACTIONS and self.read_only:
            return False
        return True

    def action_help(self) -> None:
        from app.screens.confirm import HelpScreen

        rows = [row for row in KEY_HELP if not (self.read_only and row[0] in MUTATING_KEYS)]
        self.app.push_screen(HelpScreen(rows, self.read_only))

    async def action_filter(self) -> None:
        box = self._filter_box
        if box is None:
            box = self._filter_box = Input(placeholder="filter: id, name or status (esc to clear)", id="filter")
            await self.mount(box, after=self.query_one(StatusHeader))
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self._filter_box
        if (box is not None and box.display) or self.board.filter_text:
            if box is not None:
                box.value = ""
                box.display = False
            self.board.set_filter("")
            self._apply_order()
            self.table.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if self.board.set_filter(event.value):
            self._apply_order()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.table.focus()
        if not self.board.filter_text:
            event.input.display = False

    def action_cycle_sort(self) -> None:
        self.board.cycle_sort()
        self._apply_order()

    def sort_by(self, column: str, *, reverse: bool | None = None) -> None:
        """Sort by a column (the header marks it); ``reverse`` None turns the current one round."""
        mode = SORT_OF_COLUMN.get(column)
        if mode is None:
            return
        if reverse is None:
            reverse = not self.board.sort_reverse if mode == self.board.sort_mode else False
        if self.board.set_sort(mode, reverse=reverse):
            self._apply_order()

    def reverse_sort(self) -> None:
        self.board.set_sort(self.board.sort_mode, reverse=not self.board.sort_reverse)
        self._apply_order()

    @on(ExperimentTable.HeaderClicked, "#experiments")
    def _header_clicked(self, event: ExperimentTable.HeaderClicked) -> None:
        if event.column is None:
            self.action_choose_columns()
        else:
            self.sort_by(event.column)

    def action_choose_columns(self) -> None:
        from app.screens.columns import ColumnPicker

        table = self.table

        def chosen(keys: tuple[str, ...] | None) -> None:
            if keys is not None:
                table.choose_columns(keys or None)

        self.app.push_screen(ColumnPicker(table.columns, table.hidden_columns, table.chosen), chosen)

    def action_toggle_gpus(self) -> None:
        panel = self.query_one(GpuPanel)
        panel.display = not panel.display
        self._panels_visibility()

    def action_toggle_devices(self) -> None:
        panel = self.query_one(DevicePanel)
        panel.display = not panel.display
        self._panels_visibility()

    def _panels_visibility(self) -> None:
        self.query_one("#panels").display = self.query_one(GpuPanel).display or self.query_one(DevicePanel).display
        self._fit_panels()

    def action_inspect(self) -> None:
        if (key := self._acted_on()) is not None:
            self.expwatch.inspect(key)

    def action_resume(self) -> None:
        if (key := self._acted_on()) is not None:
            self.expwatch.request_resume(key)

    def action_mark_stale(self) -> None:
        if (key := self._acted_on()) is not None:
            self.expwatch.request_mark_stale(key)

    def action_stop(self) -> None:
        if (key := self._acted_on()) is not None:
            self.expwatch.request_stop(key)

    def action_cleanup(self) -> None:
        self.expwatch.request_cleanup()


__all__ = ["KEY_HELP", "SORT_OF_COLUMN", "MainScreen"]
