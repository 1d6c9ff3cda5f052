"""The expwatch Textual app: live experiments, processes, GPUs and devices.

All disk, /proc, NVML and process-launching work runs in workers; the event
loop only applies immutable deltas (``MonitorDelta``, verdicts, snapshots) to
the widgets. Every mutating action goes through ``runtime.actions``, the same
code the CLI uses, and is refused in code (not only hidden) in read-only mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input

from runtime.liveness import LocalProbe
from runtime.watcher import MonitorDelta, StateDirMonitor
from state.devices import DeviceSnapshot
from state.record import BrokenRecord, Entry, ExperimentRecord
from state.store import StateStore
from state.telemetry import GpuAttribution, GpuSnapshot, attribute_gpu_processes
from state.verdict import StaleVerdict, judge_record
from widgets.device_panel import DevicePanel
from widgets.experiment_table import SORTS, ExperimentRow, ExperimentTable, sort_key
from widgets.formatting import is_stale
from widgets.gpu_panel import GpuPanel
from widgets.process_table import ProcessTable
from widgets.status_header import StatusHeader

from app.screens.confirm import ConfirmDialog, HelpScreen

RECONCILE_SECONDS = 30.0
RECONCILE_SHARE = 1000
VERDICT_SECONDS = 2.0
#: Running experiments judged per verdict tick: past this many, the selected row and a
#: rotating share are judged each tick, so each is judged at least every
#: ``running / VERDICTS_PER_TICK * VERDICT_SECONDS`` seconds (16 s for 16,000 running).
VERDICTS_PER_TICK = 2_000
CLOCK_SECONDS = 1.0
ORDER_SECONDS = 0.25

KEY_HELP = (
    ("↑/↓ j/k", "move"),
    ("enter", "inspect the experiment"),
    ("/", "filter by id, name or status (esc clears)"),
    ("s", "cycle the sort: " + ", ".join(SORTS)),
    ("R", "resume (shows the dry run first)"),
    ("S", "mark stale (only when the owner is dead)"),
    ("C", "clean up: mark every dead running experiment stale"),
    ("g / d", "show or hide the GPU / device panel"),
    ("ctrl+p", "command palette"),
    ("?", "this help"),
    ("q", "quit"),
)


def _local_now() -> datetime:
    return datetime.now().astimezone()


@dataclass(frozen=True)
class DashboardOptions:
    state_dir: Path
    read_only: bool = False
    poll: float | None = None
    """Seconds between full scans instead of file-system events (network filesystems)."""
    refresh: float = 1.0
    """Seconds between GPU samples."""
    resume_template: str | None = None
    simulate_gpus: int | None = None
    watch: bool = True
    gpus: bool = True


class StoreChanged(Message):
    def __init__(
        self, delta: MonitorDelta, verdicts: dict[str, StaleVerdict], initial: bool = False, complete: bool = False
    ) -> None:
        super().__init__()
        self.delta = delta
        self.verdicts = verdicts
        self.initial = initial
        self.complete = complete


class VerdictsChanged(Message):
    def __init__(self, verdicts: dict[str, StaleVerdict]) -> None:
        super().__init__()
        self.verdicts = verdicts


class GpuSampled(Message):
    def __init__(self, snapshot: GpuSnapshot, history: dict[int, tuple[float | None, ...]], attributions: dict[int, GpuAttribution]) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.history = history
        self.attributions = attributions


class MainScreen(Screen[None]):
    """Experiments table over the selected experiment's processes, GPU and device panels."""

    def __init__(self, options: DashboardOptions, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.options = options
        self.clock = clock

    def compose(self) -> ComposeResult:
        yield StatusHeader(str(self.options.state_dir), read_only=self.options.read_only, id="header")
        yield Input(placeholder="filter: id, name or status (esc to clear)", id="filter")
        with Vertical(id="main"):
            yield ExperimentTable(clock=self.clock, id="experiments")
            yield ProcessTable(clock=self.clock, id="processes")
            with Horizontal(id="panels"):
                yield GpuPanel(id="gpus")
                yield DevicePanel(id="devices")
        yield Footer()

    def on_mount(self) -> None:
        self.app.start()

    def on_resize(self) -> None:
        self.set_class(self.size.height < 30, "-short")


class ExpwatchApp(App[None]):
    CSS_PATH = "expwatch.tcss"
    TITLE = "expwatch"

    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("slash", "filter", "Filter"),
        Binding("enter", "inspect", "Inspect"),
        Binding("s", "cycle_sort", "Sort"),
        Binding("R", "resume", "Resume"),
        Binding("S", "mark_stale", "Mark stale"),
        Binding("C", "cleanup", "Clean up"),
        Binding("g", "toggle_gpus", "GPUs"),
        Binding("d", "toggle_devices", "Devices"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    MUTATING_ACTIONS = frozenset({"resume", "mark_stale", "cleanup"})

    def __init__(
        self,
        options: DashboardOptions,
        *,
        clock: Callable[[], datetime] = _local_now,
        probe: Any = None,
        gpu_source: Any = None,
    ) -> None:
        super().__init__()
        self.options = options
        self.clock = clock
        self.probe = probe or LocalProbe()
        self._gpu_source = gpu_source
        self.store = StateStore(options.state_dir, read_only=options.read_only)
        self.monitor = StateDirMonitor(self.store)
        self.entries: dict[str, Entry] = {}
        self.counts: Counter[str] = Counter()
        self._records_dirty = False
        self.verdicts: dict[str, StaleVerdict] = {}
        #: Keys of running experiments with something to probe (kept with ``entries``): the verdict tick's work list.
        self._running_keys: set[str] = set()
        self._verdict_turn = 0
        self.device_snapshots: tuple[DeviceSnapshot, ...] = ()
        self.device_errors: tuple[str, ...] = ()
        self.sort_mode = SORTS[0]
        self.filter_text = ""
        self.loaded = False
        self.scan_complete = False
        self._order_dirty = False
        self._order_cost = 0.0
        self._order_done_at = 0.0
        self._stop_watch = asyncio.Event()
        self._busy: set[str] = set()
        self._reconcile_due = 0.0
        self._reconcile_again = False
        self._order_timer: Timer | None = None
        self._gpu_sampler: Any = None
        self._records_for_threads: tuple[ExperimentRecord, ...] = ()

    # -- layout -----------------------------------------------------------------
    def get_default_screen(self) -> Screen[Any]:
        return MainScreen(self.options, self.clock)

    @property
    def table(self) -> ExperimentTable:
        return self.screen_stack[0].query_one(ExperimentTable)

    @property
    def has_main_screen(self) -> bool:
        """False while the app is starting up or shutting down (messages may still arrive)."""
        return bool(self.screen_stack) and isinstance(self.screen_stack[0], MainScreen)

    def start(self) -> None:
        """Called once the main screen is mounted: start scanning, watching and sampling."""
        self.title = f"expwatch — {self.options.state_dir}"
        main = self.screen_stack[0]
        main.query_one("#filter", Input).display = False
        if not self.options.gpus:
            main.query_one(GpuPanel).display = False
        self.table.focus()
        self._initial_scan()
        self.set_interval(RECONCILE_SECONDS if self.options.poll is None else self.options.poll, self._reconcile_tick)
        self.set_interval(VERDICT_SECONDS, self._verdict_tick)
        self.set_interval(CLOCK_SECONDS, self._clock_tick)
        # Paused while nothing waits for it (one wake-up fewer 4 times a second when idle).
        self._order_timer = self.set_interval(ORDER_SECONDS, self._order_tick, pause=True)
        if self.options.watch and self.options.poll is None:
            self._watch_files()
        if self.options.gpus:
            self._start_gpu_sampler()

    def on_unmount(self) -> None:
        self._stop_watch.set()
        if self._gpu_sampler is not None:
            self._gpu_sampler.stop(timeout=1.0)

    # -- workers: store ---------------------------------------------------------
    def _judge(self, records: Iterable[Entry]) -> dict[str, StaleVerdict]:
        """Verdicts for running experiments (reads /proc: call from a worker thread)."""
        here = self.probe.host_facts()
        now = self.clock()
        return {
            r.key: judge_record(r, here=here, probe=self.probe.probe, now=now)
            for r in records
            if isinstance(r, ExperimentRecord) and r.status == "running"
        }

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False, description="first scan of the state directory")
    def _initial_scan(self) -> None:
        first = True
        for delta in self.monitor.initial_batches():
            self.post_message(StoreChanged(delta, self._judge(delta.upserts.values()), initial=first))
            first = False
        self.post_message(StoreChanged(MonitorDelta(), {}, complete=True))

    @work(thread=True, group="reconcile", exit_on_error=False, description="rescan the state directory")
    def _reconcile(self) -> None:
        try:
            while True:
                self._reconcile_again = False
                delta = self.monitor.reconcile()
                self._schedule_reconcile()
                if delta:
                    self.post_message(StoreChanged(delta, self._judge(delta.upserts.values())))
                if not self._reconcile_again:
                    break
        finally:
            self._busy.discard("reconcile")

    def _schedule_reconcile(self) -> None:
        """The reconcile is a safety net for lost watch events: it may cost at most 1/RECONCILE_SHARE
        of a core. 10,000 files (~35 ms a scan) are reconciled every 35 s, 100,000 (0.3-0.7 s)
        every 5-12 minutes."""
        self._reconcile_due = time.monotonic() + self.monitor.last_scan_seconds * RECONCILE_SHARE

    def _reconcile_tick(self, *, now: bool = False) -> None:
        if not now and self.options.poll is None and time.monotonic() < self._reconcile_due:
            return
        if not self.scan_complete:
            return
        if "reconcile" in self._busy:
            # One is reading the directory already, perhaps from before the change: go round again.
            self._reconcile_again = now or self._reconcile_again
            return
        self._busy.add("reconcile")
        self._reconcile()

    @work(exclusive=True, group="watch", exit_on_error=False, description="watch the state directory")
    async def _watch_files(self) -> None:
        """watchfiles in an async worker; each batch is re-read in a thread."""
        lost = False
        while not self._stop_watch.is_set():
            try:
                if not self.options.state_dir.is_dir():
                    if not lost:
                        self._reconcile_tick(now=True)  # every row goes
                    lost = True
                    await asyncio.sleep(1.0)
                    continue
                if lost:
                    # Back (recreated or remounted): what was written before the new watch began
                    # sends no event, so read the whole directory once.
                    lost = False
                    self._reconcile_tick(now=True)
                async with contextlib.aclosing(self.monitor.watch(self._stop_watch)) as batches:
                    async for paths in batches:
                        if not paths and not self.monitor.has_deferred:
                            continue
                        delta = await asyncio.to_thread(self.monitor.hint, paths)
                        if delta:
                            verdicts = await asyncio.to_thread(self._judge, delta.upserts.values())
                            self.post_message(StoreChanged(delta, verdicts))
                if not self._stop_watch.is_set():
                    # The watch ends when the directory goes or is replaced: its rows go now.
                    lost = True
                    self._reconcile_tick(now=True)
            except (FileNotFoundError, RuntimeError, OSError):
                # The directory vanished or the watch broke: reconcile, then watch again.
                lost = True
                self._reconcile_tick(now=True)
                await asyncio.sleep(1.0)

    @work(thread=True, group="verdicts", exit_on_error=False, description="judge running experiments")
    def _refresh_verdicts(self, records: tuple[ExperimentRecord, ...]) -> None:
        try:
            fresh = self._judge(records)
            self.post_message(VerdictsChanged(fresh))
        finally:
            self._busy.discard("verdicts")

    def _verdict_tick(self) -> None:
        if not self.loaded or "verdicts" in self._busy or not self._running_keys:
            return
        keys = list(self._running_keys)
        if len(keys) > VERDICTS_PER_TICK:
            start = self._verdict_turn % len(keys)
            self._verdict_turn = start + VERDICTS_PER_TICK
            chosen = keys[start : start + VERDICTS_PER_TICK] + keys[: max(0, start + VERDICTS_PER_TICK - len(keys))]
            selected = self.table.cursor_key
            if selected in self._running_keys and selected not in chosen:
                chosen.append(selected)
            keys = chosen
        entries = self.entries
        self._busy.add("verdicts")
        self._refresh_verdicts(tuple(entries[k] for k in keys))

    def _clock_tick(self) -> None:
        if not self.has_main_screen:
            return
        if self.loaded:
            self.table.refresh_if_changed()
            self.screen_stack[0].query_one(ProcessTable).refresh_if_changed()

    def _order_tick(self) -> None:
        if self._records_dirty:
            # The GPU thread reads this immutable tuple; rebuilt here, not on every update.
            self._records_dirty = False
            self._records_for_threads = tuple(e for e in self.entries.values() if isinstance(e, ExperimentRecord))
        if self._order_dirty:
            self._request_order()
        if not (self._order_dirty or self._records_dirty) and self._order_timer is not None:
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

    # -- applying changes (event loop only) ---------------------------------------
    def _row(self, key: str) -> ExperimentRow:
        return ExperimentRow(self.entries[key], self.verdicts.get(key))

    def _matches(self, row: ExperimentRow) -> bool:
        if not self.filter_text:
            return True
        needle = self.filter_text.lower()
        entry = row.entry
        if isinstance(entry, BrokenRecord):
            hay = f"{entry.key} broken {entry.reason}"
        else:
            status = "stale" if is_stale(entry.status, row.verdict) else entry.status
            hay = f"{entry.experiment_id} {entry.key} {entry.label} {status}"
        return needle in hay.lower()

    def _apply_order(self) -> None:
        if not self.has_main_screen:
            return
        rows = {k: self._row(k) for k in self.entries}
        shown = [k for k, r in rows.items() if self._matches(r)]
        by = sort_key(self.sort_mode, self.clock())
        shown.sort(key=lambda k: by(rows[k]))
        self.table.replace_rows(rows, shown)
        self._update_header()
        self._show_selected()

    def _update_header(self) -> None:
        if not self.has_main_screen:
            return
        note = "" if self.scan_complete else "scanning…"
        if self.filter_text:
            note = f"filter: {self.filter_text!r} ({self.table.row_count} shown)"
        self.screen_stack[0].query_one(StatusHeader).show_counts(+self.counts, note)

    @staticmethod
    def _category(row: ExperimentRow) -> str:
        """What the header counts a row as: broken, stale, or its status."""
        entry = row.entry
        if isinstance(entry, BrokenRecord):
            return "broken"
        return "stale" if is_stale(entry.status, row.verdict) else entry.status

    def _sort_position_changed(self, old: ExperimentRow | None, new: ExperimentRow) -> bool:
        if old is None:
            return True
        now = self.clock()
        key = sort_key(self.sort_mode, now)
        return key(old) != key(new) or self._matches(old) != self._matches(new)

    def _apply(self, upserts: dict[str, Entry], removed: Iterable[str], verdicts: dict[str, StaleVerdict]) -> None:
        reorder = membership = False
        changed: dict[str, ExperimentRow] = {}
        for key in removed:
            if key in self.entries:
                self.counts[self._category(self._row(key))] -= 1
                del self.entries[key]
                membership = True
            self.verdicts.pop(key, None)
            self._running_keys.discard(key)
        touched = set(upserts) | set(verdicts)
        for key in touched:
            old = self._row(key) if key in self.entries else None
            if key in upserts:
                self.entries[key] = upserts[key]
            if key not in self.entries:
                continue
            if key in verdicts:
                self.verdicts[key] = verdicts[key]
            entry = self.entries[key]
            if isinstance(entry, ExperimentRecord) and entry.status == "running":
                if key in self.verdicts and not (entry.owner or entry.workers or entry.legacy_pid is not None):
                    # Nothing recorded to probe: the verdict ("unknown, no owner") cannot change.
                    self._running_keys.discard(key)
                else:
                    self._running_keys.add(key)
            else:
                self._running_keys.discard(key)
                self.verdicts.pop(key, None)
            new = self._row(key)
            if old == new:
                continue
            if old is not None:
                self.counts[self._category(old)] -= 1
            self.counts[self._category(new)] += 1
            if old is None:
                membership = True
            elif self._sort_position_changed(old, new):
                reorder = True
            changed[key] = new
        if membership or any(key in upserts for key in changed):
            # Only the records matter to the GPU thread: a verdict-only change leaves them as they were.
            self._records_dirty = True
            self._wake_order_tick()
        if membership and self.loaded:
            # Rows that come or go show at once unless reordering is busy (a big first scan);
            # mere moves are coalesced by the order tick.
            self._request_order()
        elif reorder:
            self._order_dirty = True
            self._wake_order_tick()
        if changed or membership:
            self._update_header()
        if changed:
            self.table.update_rows(changed)
            if self.table.cursor_key in changed:
                self._show_selected()

    def on_store_changed(self, message: StoreChanged) -> None:
        if not self.has_main_screen:
            return
        delta = message.delta
        self._apply(delta.upserts, delta.removed, message.verdicts)
        if delta.devices is not None:
            self.device_snapshots = delta.devices
            self.device_errors = delta.device_errors
            self._show_devices()
        if message.initial:
            self.loaded = True
            self._apply_order()
        if message.complete:
            self.scan_complete = True
            self._schedule_reconcile()
            # Tens of thousands of long-lived records would make every full GC pass walk
            # them again; park them outside the collector's generations.
            gc.collect()
            gc.freeze()
            if self._order_dirty:
                self._order_dirty = False
                self._apply_order()
            self._update_header()
            self._records_dirty = False
            self._records_for_threads = tuple(e for e in self.entries.values() if isinstance(e, ExperimentRecord))
            if self._gpu_sampler is not None:
                self._reattribute_gpus()

    def on_verdicts_changed(self, message: VerdictsChanged) -> None:
        if not self.has_main_screen:
            return
        changed = {k: v for k, v in message.verdicts.items() if self.verdicts.get(k) != v and k in self.entries}
        if changed:
            self._apply({}, (), changed)

    def on_gpu_sampled(self, message: GpuSampled) -> None:
        if not self.has_main_screen:
            return
        self.screen_stack[0].query_one(GpuPanel).show(message.snapshot, message.history, message.attributions)

    def _show_devices(self) -> None:
        if not self.has_main_screen:
            return
        self.screen_stack[0].query_one(DevicePanel).show(self.device_snapshots, self.device_errors, self.clock())

    @on(ExperimentTable.CursorMoved, "#experiments")
    def _cursor_moved(self, event: ExperimentTable.CursorMoved) -> None:
        if not self.has_main_screen:
            return
        self._show_selected()

    def _show_selected(self) -> None:
        if not self.has_main_screen:
            return
        entry = self.selected_entry
        processes = self.screen_stack[0].query_one(ProcessTable)
        if isinstance(entry, ExperimentRecord):
            processes.show(entry.processes)
            processes.border_title = f"processes of {entry.experiment_id}"
        else:
            processes.show(())
            processes.border_title = "processes"

    @property
    def selected_entry(self) -> Entry | None:
        key = self.table.cursor_key
        return self.entries.get(key) if key is not None else None

    # -- GPUs -------------------------------------------------------------------------
    def _start_gpu_sampler(self) -> None:
        from runtime.gpu import GpuSampler, make_gpu_source
        from runtime.procs import ProcessSampler

        source = self._gpu_source or make_gpu_source(self.options.simulate_gpus)
        procs = ProcessSampler()

        def publish(snapshot: GpuSnapshot) -> None:
            records = self._records_for_threads
            pids = [p.pid for g in snapshot.gpus for p in g.processes]
            start_times = procs.start_times(pids) if pids else {}
            here = self.probe.host_facts()
            attributions = attribute_gpu_processes(
                snapshot, records, start_times=start_times, host=here.host, boot_id=here.boot_id
            )
            history = {g.index: sampler.history(g.index, "utilization_gpu") for g in snapshot.gpus}
            self.post_message(GpuSampled(snapshot, history, attributions))

        sampler = GpuSampler(source, interval=self.options.refresh, on_snapshot=publish)
        self._gpu_sampler = sampler
        self._publish_gpu = publish
        sampler.start()

    @work(thread=True, group="gpu-attribution", exit_on_error=False, description="attribute GPU processes")
    def _reattribute_gpus(self) -> None:
        """Attribute the latest GPU sample again once the experiments are known."""
        sampler = self._gpu_sampler
        snapshot = sampler.latest() if sampler is not None else None
        if snapshot is not None:
            self._publish_gpu(snapshot)

    # -- actions ----------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.MUTATING_ACTIONS and self.options.read_only:
            return False
        return True

    def _refuse_read_only(self) -> bool:
        if self.options.read_only:
            self.notify("read-only observer mode: nothing can be changed", severity="warning")
            return True
        return False

    def action_help(self) -> None:
        self.push_screen(HelpScreen(KEY_HELP, self.options.read_only))

    def action_filter(self) -> None:
        box = self.screen_stack[0].query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.screen_stack[0].query_one("#filter", Input)
        if box.display or self.filter_text:
            box.value = ""
            box.display = False
            self.filter_text = ""
            self._apply_order()
            self.table.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._apply_order()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.table.focus()
        if not self.filter_text:
            event.input.display = False

    def action_cycle_sort(self) -> None:
        self.sort_mode = SORTS[(SORTS.index(self.sort_mode) + 1) % len(SORTS)]
        self.notify(f"sorted by {self.sort_mode}", timeout=2)
        self._apply_order()

    def action_toggle_gpus(self) -> None:
        panel = self.screen_stack[0].query_one(GpuPanel)
        panel.display = not panel.display
        self._panels_visibility()

    def action_toggle_devices(self) -> None:
        panel = self.screen_stack[0].query_one(DevicePanel)
        panel.display = not panel.display
        self._panels_visibility()

    def _panels_visibility(self) -> None:
        main = self.screen_stack[0]
        main.query_one("#panels").display = main.query_one(GpuPanel).display or main.query_one(DevicePanel).display

    @on(ExperimentTable.RowChosen, "#experiments")
    def _row_chosen(self, event: ExperimentTable.RowChosen) -> None:
        self.action_inspect()

    def action_inspect(self) -> None:
        entry = self.selected_entry
        if entry is None:
            return
        from app.screens.inspector import InspectorScreen

        self.push_screen(
            InspectorScreen(
                StateStore(self.options.state_dir, read_only=True),
                entry.key,
                verdict_provider=self.verdict_for_record,
                resume_command=self.resume_command_text,
                now=self.clock,
            )
        )

    def verdict_for_record(self, record: ExperimentRecord) -> StaleVerdict:
        """Fresh verdict (reads /proc: worker threads only)."""
        return judge_record(record, here=self.probe.host_facts(), probe=self.probe.probe, now=self.clock())

    def resume_command_text(self, ident: str) -> str:
        from runtime.actions import plan_resume

        plan = plan_resume(self.store, ident, template=self.options.resume_template, probe=self.probe)
        return " ".join(plan.argv) + f"   (in {plan.cwd})"

    def _selected_record(self) -> ExperimentRecord | None:
        entry = self.selected_entry
        if isinstance(entry, BrokenRecord):
            self.notify(f"{entry.key} is unreadable: {entry.reason}", severity="error")
            return None
        return entry

    def action_resume(self) -> None:
        if self._refuse_read_only():
            return
        record = self._selected_record()
        if record is not None:
            self._plan_resume(record)

    @work(thread=True, group="action", exit_on_error=False, description="plan a resume")
    def _plan_resume(self, record: ExperimentRecord) -> None:
        from runtime.actions import plan_resume

        try:
            plan = self.monitor_call(lambda store: plan_resume(store, record.key, template=self.options.resume_template, probe=self.probe))
        except Exception as exc:
            self.call_from_thread(self.notify, f"cannot resume {record.experiment_id}: {exc}", severity="error")
            return

        def confirmed(ok: bool | None) -> None:
            if ok:
                self._do_resume(record)

        dialog = ConfirmDialog(
            f"Resume {record.experiment_id}?",
            plan.describe(),
            confirm_label="Resume",
            refusal=None if plan.allowed else plan.refusal,
        )
        self.call_from_thread(self.push_screen, dialog, confirmed)

    @work(thread=True, group="action", exit_on_error=False, description="resume")
    def _do_resume(self, record: ExperimentRecord) -> None:
        from runtime.actions import resume_experiment

        try:
            result = self.monitor_call(
                lambda store: resume_experiment(store, record.key, template=self.options.resume_template, probe=self.probe)
            )
        except Exception as exc:
            self.call_from_thread(self.notify, f"resume refused: {exc}", severity="error", timeout=8)
            return
        self.call_from_thread(
            self.notify, f"resumed {record.experiment_id}: pid {result.pid}, log {result.log_path}", timeout=8
        )
        self._reconcile_now()

    def action_mark_stale(self) -> None:
        if self._refuse_read_only():
            return
        record = self._selected_record()
        if record is not None:
            self._plan_mark_stale(record)

    @work(thread=True, group="action", exit_on_error=False, description="plan mark-stale")
    def _plan_mark_stale(self, record: ExperimentRecord) -> None:
        verdict = self.verdict_for_record(record)
        lines = [f"status: {record.status}", f"verdict: {verdict.liveness.value}: {verdict.reason}", "evidence:"]
        lines += [f"  - {e}" for e in verdict.evidence] or ["  (none)"]
        refusal = None
        if record.status != "running":
            refusal = f"it is {record.status}, not running"
        elif not verdict.is_dead:
            refusal = f"the owner is {verdict.liveness.value}; only a dead owner can be marked stale"
        else:
            lines.append("")
            lines.append("It will become interrupted (with the stale message), and the action is journalled.")

        def confirmed(ok: bool | None) -> None:
            if ok:
                self._do_mark_stale(record)

        dialog = ConfirmDialog(f"Mark {record.experiment_id} stale?", lines, confirm_label="Mark stale", refusal=refusal)
        self.call_from_thread(self.push_screen, dialog, confirmed)

    @work(thread=True, group="action", exit_on_error=False, description="mark stale")
    def _do_mark_stale(self, record: ExperimentRecord) -> None:
        from runtime.actions import mark_stale_experiment

        try:
            result = self.monitor_call(
                lambda store: mark_stale_experiment(store, record.key, expected=record.version, probe=self.probe)
            )
        except Exception as exc:
            self.call_from_thread(self.notify, f"mark stale refused: {exc}", severity="error", timeout=8)
            return
        self.call_from_thread(self.notify, f"{result.experiment_id}: {result.from_status} → {result.to_status}")
        self._reconcile_now()

    def action_cleanup(self) -> None:
        if self._refuse_read_only():
            return
        self._plan_cleanup()

    @work(thread=True, group="action", exit_on_error=False, description="plan clean-up")
    def _plan_cleanup(self) -> None:
        from runtime.actions import plan_cleanup

        try:
            plan = self.monitor_call(lambda store: plan_cleanup(store, probe=self.probe))
        except Exception as exc:
            self.call_from_thread(self.notify, f"cannot clean up: {exc}", severity="error")
            return
        lines = [f"{r.experiment_id}: {v.reason}" for r, v in plan]
        refusal = None if plan else "no running experiment has a dead owner"

        def confirmed(ok: bool | None) -> None:
            if ok:
                self._do_cleanup()

        dialog = ConfirmDialog(f"Mark {len(plan)} stale experiment(s) interrupted?", lines, confirm_label="Clean up", refusal=refusal)
        self.call_from_thread(self.push_screen, dialog, confirmed)

    @work(thread=True, group="action", exit_on_error=False, description="clean up stale experiments")
    def _do_cleanup(self) -> None:
        from runtime.actions import cleanup_stale

        try:
            results = self.monitor_call(lambda store: cleanup_stale(store, probe=self.probe))
        except Exception as exc:
            self.call_from_thread(self.notify, f"clean up refused: {exc}", severity="error", timeout=8)
            return
        self.call_from_thread(self.notify, f"marked {len(results)} experiment(s) interrupted")
        self._reconcile_now()

    def monitor_call(self, fn: Callable[[StateStore], Any]) -> Any:
        """Run ``fn`` with the store, serialised with the watcher (worker threads only)."""
        with self.monitor.exclusive() as store:
            return fn(store)

    def _reconcile_now(self) -> None:
        delta = self.monitor.reconcile()
        if delta:
            self.post_message(StoreChanged(delta, self._judge(delta.upserts.values())))

    # -- command palette --------------------------------------------------------------
    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        entry = self.selected_entry if screen is self.screen_stack[0] else None
        if entry is None:
            return
        name = entry.experiment_id
        yield SystemCommand(f"Inspect {name}", "Open the inspector", self.action_inspect)
        if not self.options.read_only:
            yield SystemCommand(f"Resume {name}", "Dry run first, then confirm", self.action_resume)
            yield SystemCommand(f"Mark {name} stale", "Only when its owner is dead", self.action_mark_stale)
        yield SystemCommand(f"Copy id {name}", "Copy the experiment id to the clipboard", lambda: self._copy(name))
        log_path = getattr(entry, "log_path", None)
        if log_path:
            yield SystemCommand(f"Open log of {name}", str(log_path), lambda: self._open_log(log_path))

    def _copy(self, text: str) -> None:
        self.copy_to_clipboard(text)
        self.notify(f"copied {text}")

    def _open_log(self, path: str) -> None:
        from app.screens.log_viewer import LogScreen

        self.push_screen(LogScreen(Path(path)))


def run_dashboard(options: DashboardOptions) -> int:
    if options.read_only and not os.access(options.state_dir, os.R_OK):
        raise PermissionError(f"cannot read {options.state_dir}")
    ExpwatchApp(options).run()
    return 0
