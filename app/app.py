"""The expwatch App: sources in, board, one main screen; workers for everything slow.

Thin on purpose. It owns the sources, the samplers and the workers; folds every
source delta into the board and hands the screen what to redraw; and routes every
worker failure to one handler that shows it (a failed worker never leaves a
plausible, empty picture behind). Disk, /proc, NVML and process launching run in
workers; the event loop only applies immutable deltas.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.markup import escape as escape_markup
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from runtime.liveness import LocalProbe
from state.board import Board
from state.record import ExperimentRecord
from state.sources import Delta, DirectorySource, Source, open_sources
from state.store import StateStore
from state.text import printable
from state.verdict import StaleVerdict, judge_with

from app.actions import ActionFlows
from app.alerting import AlertFlows
from app.remote_actions import RemoteActionFlows
from app.preferences import Preferences, changed_since, save_preferences
from app.messages import GpuSampled, SourceChanged, SourceScanned
from app.screens.main import SORT_OF_COLUMN, MainScreen
from widgets.gpu_panel import SPARK_SAMPLES

if TYPE_CHECKING:
    from state.telemetry import GpuSnapshot, HostGpus

log = logging.getLogger("expwatch")

RECONCILE_SECONDS = 30.0
RECONCILE_SHARE = 1000
VERDICT_SECONDS = 2.0
#: Running experiments judged per verdict tick: past this many, the selected row and a
#: rotating share are judged each tick, so each is judged at least every
#: ``running / VERDICTS_PER_TICK * VERDICT_SECONDS`` seconds (16 s for 16,000 running).
VERDICTS_PER_TICK = 2_000
RECORDS_SECONDS = 0.25
#: The longest the first scan waits for its first rows to be drawn before it reads on.
FIRST_FRAME_WAIT = 1.0
#: How often sources that report their own health (a hub: unreachable since...) are asked.
STATUS_SECONDS = 1.0


#: Every sample's time, when comparing what two samples show (the panel does not show it).
_SHOWN_TIME = datetime(1970, 1, 1)


def _local_now() -> datetime:
    return datetime.now().astimezone()


@dataclass(frozen=True)
class DashboardOptions:
    sources: tuple[str | Path, ...] = field(default_factory=lambda: (".state",))
    """What to show, as the user typed it (state directories, or any kind ``open_source`` knows)."""
    read_only: bool = False
    poll: float | None = None
    """Seconds between full scans instead of file-system events (network filesystems)."""
    refresh: float = 1.0
    """Seconds between GPU samples."""
    resume_template: str | None = None
    simulate_gpus: int | None = None
    watch: bool = True
    gpus: bool = True
    local_gpus: bool = True
    """Sample this machine's GPUs too (off: the panel shows only what the hubs' hosts publish)."""
    preferences: Preferences = field(default_factory=Preferences)
    """Theme, sort, hidden columns, panels and alerts for this session (the file's, flags applied)."""
    preferences_path: Path | None = None
    """Where what the user changes on the screen is saved at quit (None: nowhere, as in tests)."""
    saved_preferences: Preferences | None = None
    """The file's own values, which a save keeps except where the user changed something."""
    opened: tuple[Source, ...] = field(default=(), compare=False, repr=False)
    """``sources`` already opened, in order (the dashboard command opens them before Textual
    loads, to read the first rows meanwhile); empty: the App opens them."""


class ExpwatchApp(ActionFlows, RemoteActionFlows, AlertFlows, App[None]):
    CSS_PATH = "expwatch.tcss"
    TITLE = "expwatch"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        # Like htop and nvitop. Textual's default only says "press q", and as markup our notices never render.
        Binding("ctrl+c", "quit", show=False),
        # Reached only when the screen's own binding is hidden (read-only): the keys then say why.
        *(Binding(key, "read_only_refusal", show=False) for key in ("R", "S", "K", "C")),
    ]

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
        self.sources: list[Source] = list(options.opened) or open_sources(options.sources, read_only=options.read_only)
        self.by_name = {s.name: s for s in self.sources}
        self.board = Board([s.name for s in self.sources])
        self.board.set_sort(options.preferences.sort)
        #: Sources whose first rows were read ahead (``DirectorySource.read_first_screen``) and are
        #: on the board before the screen is composed: its first frame draws them.
        self._shown_early: set[str] = set()
        for source in self.sources:
            ahead = source.first_screen() if isinstance(source, DirectorySource) else None
            if ahead is not None:
                self.board.apply(source.name, ahead)
                self._shown_early.add(source.name)
        self.main = MainScreen(
            self.board,
            location="  ".join(str(p) for p in options.sources),
            read_only=options.read_only,
            gpus=options.gpus,
            clock=clock,
        )
        self._scanning = set(self.by_name)
        self._stop_watch = asyncio.Event()
        self._stop_thread = threading.Event()
        self._busy: set[str] = set()
        self._reconcile_due: dict[str, float] = {}
        self._reconcile_again: set[str] = set()
        self._verdict_turn = 0
        self._gpu_sampler: Any = None
        #: Set once the first rows are drawn (``_after_first_frame``); the first scan waits for it.
        self._first_frame = threading.Event()
        self._records_for_threads: tuple[ExperimentRecord, ...] = ()
        self.worker_failures: list[str] = []
        #: Each source whose first scan raised, by name, with what it raised (``worker_failures`` has the text too).
        self.scan_failures: dict[str, BaseException] = {}
        #: The last GPU sample, for a main screen mounted after it came.
        self.latest_gpus: GpuSampled | None = None
        self._source_status: dict[str, str | None] = {}
        self._local_gpus: GpuSampled | None = None
        self._fleet_gpus: tuple[HostGpus, ...] = ()
        self._fleet_versions: tuple[int, ...] = ()
        #: Textual's default theme, so a session that never changed it saves no theme.
        self.theme_at_start = self.theme
        self._focused_once = False

    # -- start and stop ---------------------------------------------------------------------
    def get_driver_class(self) -> type[Any]:
        """Textual's Linux driver with an input thread that sleeps while no key comes (app/input_driver.py)."""
        driver = super().get_driver_class()
        from textual.drivers.linux_driver import LinuxDriver

        if driver is LinuxDriver:
            from app.input_driver import QuietLinuxDriver

            return QuietLinuxDriver
        return driver

    def get_default_screen(self) -> Screen[Any]:
        return self.main

    @property
    def scan_complete(self) -> bool:
        return not self._scanning

    def on_mount(self) -> None:
        self.title = f"expwatch — {printable(self.main.location)}"
        self.call_after_refresh(self._apply_preferences)
        # Paused while no record changes: an idle dashboard is not woken 4 times a second for nothing.
        self._records_timer = self.set_interval(RECORDS_SECONDS, self._records_tick, pause=True)
        for source in self.sources:
            self._initial_scan(source)
        if self._shown_early:
            self.call_after_refresh(self._after_first_frame)
        self.set_interval(RECONCILE_SECONDS if self.options.poll is None else self.options.poll, self._reconcile_tick)
        self.set_interval(VERDICT_SECONDS, self._verdict_tick)
        if any(hasattr(source, "status") for source in self.sources):
            # Only sources that report their own health (a hub) are asked: no wake for the others.
            self.set_interval(STATUS_SECONDS, self._source_status_tick)
        if self.options.watch and self.options.poll is None:
            for source in self.sources:
                if not isinstance(source, DirectorySource) and hasattr(source, "follow"):
                    self._follow(source)

    def _after_first_frame(self) -> None:
        """The first rows (or the end of a scan) are drawn: start what the first frame does not need.

        Timestamps from spawn on a pty (10,000 files) put the directory watch's set-up (listing
        the directory to find study folders: 10-40 ms), NVML, psutil and the sampler's thread
        before the first rows, and the first scan's second batch competing with the first rows'
        drawing for the one GIL: the scan waits for this before reading on. The watches start
        while the first scan still runs, as they did from ``on_mount``: its closing rescan reads
        what changed before they began.
        """
        if self._first_frame.is_set():
            return
        if self.options.watch and self.options.poll is None:
            for source in self.sources:
                if isinstance(source, DirectorySource):
                    self._watch(source)
        if self.options.gpus and self.options.local_gpus:
            self._start_gpu_sampler()
        self._first_frame.set()

    # -- preferences ---------------------------------------------------------------------------
    def _apply_preferences(self) -> None:
        prefs = self.options.preferences
        if prefs.theme:
            if prefs.theme in self.available_themes:
                self.theme = prefs.theme
            else:
                self.notify(f"unknown theme {prefs.theme!r} in the preferences: the default is used", severity="warning", markup=False)
        self.main.table.hide_columns(prefs.hidden_columns)
        if not prefs.gpu_panel and self.main.query_one("#gpus").display:
            self.main.action_toggle_gpus()
        if not prefs.device_panel and self.main.query_one("#devices").display:
            self.main.action_toggle_devices()

    def current_preferences(self) -> Preferences:
        """The session's preferences as the screen shows them now."""
        return replace(
            self.options.preferences,
            theme=self.theme,
            sort=self.board.sort_mode,
            hidden_columns=tuple(sorted(self.main.table.hidden)),
            gpu_panel=bool(self.main.query_one("#gpus").display),
            device_panel=bool(self.main.query_one("#devices").display),
        )

    def save_changed_preferences(self) -> None:
        """Save what the user changed on the screen this session (flags given stay this session's)."""
        path, saved = self.options.preferences_path, self.options.saved_preferences
        if path is None or saved is None or not self.main.ready or self.options.read_only:
            return  # an observer writes nothing at all, its own preferences included
        start = replace(self.options.preferences, theme=self.options.preferences.theme or self.theme_at_start)
        merged = changed_since(start, self.current_preferences(), saved)
        if merged != saved:
            try:
                save_preferences(merged, path)
            except OSError as exc:
                log.error("could not save the preferences to %s: %s", path, exc)

    # -- the browser (textual-serve) ----------------------------------------------------------------
    def on_app_focus(self, event: events.AppFocus) -> None:
        self._focused_once = True

    def on_app_blur(self, event: events.AppBlur) -> None:
        """The web driver starts with a blur before the page was ever focused; Textual's footer then stays
        blank until the first click. A page that was never focused has lost nothing: treat it as focused."""
        if self.is_web and not self._focused_once:
            self.call_later(self._as_if_focused)  # after Textual's own blur handler, which runs after this one

    def _as_if_focused(self) -> None:
        if not self._focused_once:
            self.app_focus = True
            self.screen.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "read_only_refusal":
            return self.options.read_only
        return True

    def action_read_only_refusal(self) -> None:
        """A key that would change something, in observer mode: say why nothing happens (it is not in the footer)."""
        self.notify("read-only (observer) mode: nothing can be changed here", severity="warning", timeout=4)

    async def action_quit(self) -> None:
        self.save_changed_preferences()
        await super().action_quit()

    def on_unmount(self) -> None:
        self._stop_watch.set()
        self._stop_thread.set()
        self._first_frame.set()
        if self._gpu_sampler is not None:
            self._gpu_sampler.stop(timeout=1.0)

    def notify(self, message: str, *, title: str = "", severity: Any = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Every notice here carries data (ids, reasons, errors): shown as text, never as markup."""
        super().notify(printable(message, keep_newlines=True), title=printable(title), severity=severity,
                       timeout=timeout, markup=False)

    # -- the one error handler -------------------------------------------------------------------
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.worker_failed(event.worker.description or event.worker.name, event.worker.error)

    def worker_failed(self, what: str, error: BaseException | None) -> None:
        """Show a failed worker (never drop it): an error notice, the header, the log."""
        text = f"{what} failed: {type(error).__name__}: {error}" if error is not None else f"{what} failed"
        self.worker_failures.append(text)
        log.error(text, exc_info=error)
        self.notify(text, severity="error", timeout=15)
        self.main.show_failure(text)

    # -- sources ------------------------------------------------------------------------------------
    def _post(self, source: Source, delta: Delta, *, first: bool = False, judge: bool = True) -> None:
        """Post a delta from a worker thread, with verdicts for the running rows it brings."""
        if judge and delta.upserts:
            verdicts = source.judge(delta.upserts.values(), self.probe, self.clock())
            if verdicts:
                delta = Delta(delta.upserts, delta.removed, verdicts, delta.devices, delta.device_errors)
        if delta or first:
            self.post_message(SourceChanged(source.name, delta, first))

    @work(thread=True, group="scan", exit_on_error=False, description="first scan")
    def _initial_scan(self, source: Source) -> None:
        first = True
        try:
            if source.name in self._shown_early:
                # Its first rows are drawn with the first frame: the next batch waits for that frame.
                self._first_frame.wait(FIRST_FRAME_WAIT)
            for delta in source.initial_batches():
                self._post(source, delta, first=first)
                if first:
                    # The next batch is read once the first rows are drawn: both want the GIL.
                    self._first_frame.wait(FIRST_FRAME_WAIT)
                first = False
        except Exception as exc:
            self.scan_failures[source.name] = exc  # before SourceScanned: a reader of scan_complete sees it
            raise
        finally:
            # Done, or failed (the failure reaches the handler): either way it is not "scanning" any more.
            self.post_message(SourceScanned(source.name))

    def on_source_changed(self, message: SourceChanged) -> None:
        redraw = self.board.apply(message.source, message.delta)
        if message.delta.upserts or message.delta.removed:
            self._records_timer.resume()
        if self.main.ready:
            self.main.show(redraw)
        if redraw.alerts:
            self.raise_alerts(redraw.alerts)
        if message.first and not self.main.loaded:
            self.main.first_rows_ready()
        if message.first:
            self.call_after_refresh(self._after_first_frame)

    def on_source_scanned(self, message: SourceScanned) -> None:
        self._scanning.discard(message.source)
        self._schedule_reconcile(self.by_name[message.source])
        self.call_after_refresh(self._after_first_frame)
        if self._scanning:
            return
        # Tens of thousands of long-lived records would make every full GC pass walk
        # them again; park them outside the collector's generations.
        gc.collect()
        gc.freeze()
        self._records_for_threads = self.board.records()
        self.main.scan_finished()
        if self._gpu_sampler is not None:
            self._reattribute_gpus()

    def _schedule_reconcile(self, source: Source) -> None:
        """The reconcile is a safety net for lost watch events: it may cost at most 1/RECONCILE_SHARE
        of a core. 10,000 files (~35 ms a scan) are reconciled every 35 s, 100,000 (0.3-0.7 s)
        every 5-12 minutes."""
        cost = getattr(source, "last_scan_seconds", 0.0)
        every = getattr(source, "poll_seconds", None)
        due = cost * RECONCILE_SHARE if every is None else max(every, cost * 10)
        self._reconcile_due[source.name] = time.monotonic() + due

    def _reconcile_tick(self, *, now: bool = False, only: Source | None = None) -> None:
        for source in [only] if only is not None else self.sources:
            if source.name in self._scanning:
                continue
            if not now and self.options.poll is None and time.monotonic() < self._reconcile_due.get(source.name, 0.0):
                continue
            busy = f"reconcile:{source.name}"
            if busy in self._busy:
                # One is reading the directory already, perhaps from before the change: go round again.
                if now:
                    self._reconcile_again.add(source.name)
                continue
            self._busy.add(busy)
            self._reconcile(source)

    @work(thread=True, group="reconcile", exit_on_error=False, description="rescan")
    def _reconcile(self, source: Source) -> None:
        try:
            while True:
                self._reconcile_again.discard(source.name)
                self._post(source, source.reconcile())
                self._schedule_reconcile(source)
                if source.name not in self._reconcile_again:
                    break
        finally:
            self._busy.discard(f"reconcile:{source.name}")

    def reconcile_now(self, source: Source) -> None:
        """Rescan at once (worker threads only: after an action wrote a file)."""
        self._post(source, source.reconcile())

    @work(thread=True, group="watch", exit_on_error=False, description="follow a source")
    def _follow(self, source: Any) -> None:
        """A source that reports its own changes (``follow(stop)`` blocks, yielding deltas until stopped)."""
        stop = self._stop_thread
        for delta in source.follow(stop):
            if stop.is_set():
                break
            self._post(source, delta)

    @work(exclusive=False, group="watch", exit_on_error=False, description="watch")
    async def _watch(self, source: DirectorySource) -> None:
        """watchfiles in an async worker; each batch is re-read in a thread."""
        from runtime.watcher import watch_directory  # with inotify's ctypes, after the first frame

        lost = False
        renewed = False
        fresh: set[Path] = set()  # study folders that appeared while watching (their manifest may follow)
        while not self._stop_watch.is_set():
            try:
                if not source.root.is_dir():
                    if not lost:
                        self._reconcile_tick(now=True, only=source)  # every row goes
                    lost = True
                    await asyncio.sleep(1.0)
                    continue
                if lost:
                    # Back (recreated or remounted, or a folder to watch appeared): what was written
                    # before the new watch began sends it no event, so its first batch (events, or
                    # the idle one) reads the whole directory once.
                    lost = False
                    renewed = True
                async with contextlib.aclosing(watch_directory(source.root, self._stop_watch, fresh)) as batches:
                    async for paths in batches:
                        if renewed:
                            renewed = False
                            self._reconcile_tick(now=True, only=source)
                            continue
                        if not paths and not source.has_deferred:
                            continue
                        delta = await asyncio.to_thread(source.hint, paths)
                        if delta:
                            await asyncio.to_thread(self._post, source, delta)
                if not self._stop_watch.is_set():
                    # The watch ends when a folder to watch appears, or the directory goes or is
                    # replaced: its rows go now, and the next watch reads it all once begun.
                    lost = True
                    self._reconcile_tick(now=True, only=source)
            except (FileNotFoundError, RuntimeError, OSError):
                # The directory vanished or the watch broke: reconcile, then watch again.
                lost = True
                self._reconcile_tick(now=True, only=source)
                await asyncio.sleep(1.0)

    # -- verdicts --------------------------------------------------------------------------------------
    def _verdict_tick(self) -> None:
        if "verdicts" in self._busy or not self.board.to_judge:
            return
        keys = list(self.board.to_judge)
        if len(keys) > VERDICTS_PER_TICK:
            start = self._verdict_turn % len(keys)
            self._verdict_turn = start + VERDICTS_PER_TICK
            chosen = keys[start : start + VERDICTS_PER_TICK] + keys[: max(0, start + VERDICTS_PER_TICK - len(keys))]
            selected = self.main.selected_key
            if selected in self.board.to_judge and selected not in chosen:
                chosen.append(selected)
            keys = chosen
        work_list = [(s, tuple(self.board.entries_of(s.name, keys))) for s in self.sources]
        self._busy.add("verdicts")
        self._judge([(s, e) for s, e in work_list if e])

    @work(thread=True, group="verdicts", exit_on_error=False, description="judge running experiments")
    def _judge(self, work_list: list[tuple[Source, tuple[Any, ...]]]) -> None:
        try:
            now = self.clock()
            for source, entries in work_list:
                verdicts = source.judge(entries, self.probe, now)
                if verdicts:
                    self.post_message(SourceChanged(source.name, Delta(verdicts=verdicts)))
        finally:
            self._busy.discard("verdicts")

    def verdict_for_record(self, record: ExperimentRecord) -> StaleVerdict:
        """A fresh verdict for one record (reads /proc: worker threads only)."""
        return judge_one(record, self.probe, self.clock())

    @property
    def _here_as_host(self) -> str:
        """This machine's name as agents publish it (asked only once a hub shows GPUs)."""
        from state.hub.codec import host_name_from

        return host_name_from(socket.gethostname())

    @property
    def hubs(self) -> list[Any]:
        """The hub sources shown (their module, redis and 30-40 ms of start-up, loads only when a hub URL was opened)."""
        hub = sys.modules.get("state.sources.hub")
        return [s for s in self.sources if isinstance(s, hub.HubSource)] if hub is not None else []

    @property
    def shows_hosts(self) -> bool:
        """Whether rows come from other hosts (a hub): the table then shows where each row lives."""
        return bool(self.hubs)

    def _source_status_tick(self) -> None:
        """A source's health changed (a hub lost or back): say so once, keeping the last good picture."""
        self._fleet_gpus_tick()
        for source in self.sources:
            status = getattr(source, "status", None)
            if status == self._source_status.get(source.name):
                continue
            before = self._source_status.get(source.name)
            self._source_status[source.name] = status
            if status is not None and before is None:
                self.notify(status, severity="error", timeout=15, markup=False)
            elif status is None and before is not None:
                self.notify(f"{source.name}: reachable again", markup=False)
            if self.main.ready:
                self.main.show_sources_status(" · ".join(s for s in self._source_status.values() if s))

    def _records_tick(self) -> None:
        # The GPU thread reads this immutable tuple; rebuilt at most 4x/s, only after records changed.
        self._records_timer.pause()
        self._records_for_threads = self.board.records()

    # -- GPUs ----------------------------------------------------------------------------------------------
    def _start_gpu_sampler(self) -> None:
        if self._stop_thread.is_set():
            return  # quit before the first frame: nothing to stop later
        from runtime.gpu import GpuSampler, make_gpu_source
        from runtime.procs import ProcessSampler
        from state.telemetry import attribute_gpu_processes

        source = self._gpu_source or make_gpu_source(self.options.simulate_gpus)
        procs = ProcessSampler()
        posted: list[tuple[object, ...]] = []

        def publish(snapshot: GpuSnapshot) -> None:
            records = self._records_for_threads
            pids = [p.pid for g in snapshot.gpus for p in g.processes]
            start_times = procs.start_times(pids) if pids else {}
            here = self.probe.host_facts()
            attributions = attribute_gpu_processes(
                snapshot, records, start_times=start_times, host=here.host, boot_id=here.boot_id
            )
            history = {g.index: sampler.history(g.index, "utilization_gpu")[-SPARK_SAMPLES:] for g in snapshot.gpus}
            # What the panel shows of it (the time it was taken is not): a sample that would show the
            # same (no GPUs here, or idle ones) wakes nothing on the event loop.
            shown = (replace(snapshot, taken_at=_SHOWN_TIME), history, attributions)
            if posted and posted[0] == shown:
                return
            posted[:] = [shown]
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

    def _fleet_gpus_tick(self) -> None:
        """The hubs' GPU snapshots (read by their follow threads), shown when any changed."""
        hubs = self.hubs
        versions = tuple(h.gpus_version for h in hubs)
        if not self.options.gpus or versions == self._fleet_versions:
            return
        self._fleet_versions = versions
        self._fleet_gpus = tuple(g for h in hubs for g in h.fleet_gpus())
        self._show_gpus()

    def on_gpu_sampled(self, message: GpuSampled) -> None:
        self._local_gpus = message
        self._show_gpus()

    def _show_gpus(self) -> None:
        """This host's sample with the fleet's; this host publishing to the hub too shows once, under its name."""
        local, fleet = self._local_gpus, self._fleet_gpus
        if fleet and local is not None and any(g.host == self._here_as_host for g in fleet):
            local = None
        if local is None and not fleet:
            return
        message = GpuSampled(local.snapshot if local else None, local.history if local else {}, local.attributions if local else {}, fleet)
        self.latest_gpus = message
        if self.main.ready:
            self.main.show_gpus(message)

    # -- inspecting ------------------------------------------------------------------------------------------
    def source_of(self, key: str) -> tuple[Source, Any] | None:
        row = self.board.get(key)
        if row is None:
            return None
        return self.by_name[row.source], row.entry

    def inspect(self, key: str) -> None:
        found = self.source_of(key)
        if found is None:
            return
        source, entry = found
        from app.screens.inspector import InspectorScreen

        if isinstance(source, DirectorySource):
            screen = InspectorScreen(
                StateStore(source.root, read_only=True),
                entry.key,
                verdict_provider=self.verdict_for_record,
                resume_command=lambda ident: self.resume_command_text(source, ident),
                now=self.clock,
            )
        elif hasattr(source, "snapshot_reader"):
            screen = InspectorScreen(source.snapshot_reader(), entry.key, now=self.clock)
        else:
            self.notify(f"{source.name}: opening an experiment is not available for this kind of source", severity="warning")
            return
        self.push_screen(screen)

    # -- command palette ---------------------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Textual's own (its Screenshot replaced by one that says where it saved, or why not), then
        on the main screen every action the keys have: sorts, filter, columns, clean-up, panels,
        and what can be done with the selected experiment."""
        for command in super().get_system_commands(screen):
            if command.title != "Screenshot":
                yield command
        yield SystemCommand("Screenshot", "Save an SVG of the screen in the current directory", self.save_svg)
        if screen is not self.main:
            return
        main = self.main
        yield SystemCommand("Help: keys", "Every key of this screen", main.action_help)
        yield SystemCommand("Filter", "Filter by id, name or status", main.action_filter)
        if self.board.filter_text:
            yield SystemCommand("Clear the filter", f"Now: {escape_markup(printable(self.board.filter_text))}", main.action_clear_filter)
        for column in main.table.columns:
            if column.key in SORT_OF_COLUMN:
                yield SystemCommand(f"Sort by {column.name}", "Again to reverse", partial(main.sort_by, column.key))
        yield SystemCommand("Reverse the sort", f"Now: {self.board.sort_mode}", main.reverse_sort)
        yield SystemCommand("Choose columns", "Which columns the table shows", main.action_choose_columns)
        yield SystemCommand("Show or hide the GPU panel", "Key g", main.action_toggle_gpus)
        yield SystemCommand("Show or hide the device panel", "Key d", main.action_toggle_devices)
        if not self.options.read_only:
            yield SystemCommand("Clean up stale experiments", "Mark every dead running experiment interrupted", main.action_cleanup)
        row = main.selected_row
        if row is None:
            return
        name = row.entry.experiment_id
        # The palette reads titles and help as markup: the id is escaped for it, and copied as it is.
        shown = escape_markup(printable(name))
        yield SystemCommand(f"Inspect {shown}", "Open the inspector", main.action_inspect)
        if not self.options.read_only:
            yield SystemCommand(f"Resume {shown}", "Dry run first, then confirm", main.action_resume)
            yield SystemCommand(f"Mark {shown} stale", "Only when its owner is dead", main.action_mark_stale)
            yield SystemCommand(f"Stop {shown}", "SIGINT to its runner: it stops at a run boundary", main.action_stop)
        yield SystemCommand(f"Copy id {shown}", "Copy the experiment id to the clipboard", lambda: self._copy(name))
        log_path = getattr(row.entry, "log_path", None)
        if log_path:
            yield SystemCommand(f"Open log of {shown}", escape_markup(printable(log_path)), lambda: self._open_log(log_path))

    def save_svg(self) -> str | None:
        """Save the screen as an SVG in the current directory; say where, or why it could not."""
        name = f"expwatch-{datetime.now().strftime('%Y%m%d-%H%M%S')}.svg"
        try:
            path = self.save_screenshot(filename=name, path=os.getcwd())
        except OSError as exc:
            self.notify(f"screenshot not saved: {exc.strerror or exc} ({exc.filename or os.getcwd()})", severity="error", markup=False)
            return None
        self.notify(f"screenshot saved: {path}", markup=False)
        return path

    def _copy(self, text: str) -> None:
        self.copy_to_clipboard(text)
        self.notify(f"copied {text}")

    def _open_log(self, path: str) -> None:
        from app.screens.log_viewer import LogScreen

        self.push_screen(LogScreen(Path(path)))


def judge_one(record: ExperimentRecord, probe: Any, now: datetime) -> StaleVerdict:
    return judge_with(record, probe, now)


def run_dashboard(options: DashboardOptions) -> int:
    for root in options.sources:
        if options.read_only and "://" not in str(root) and not os.access(root, os.R_OK):
            raise PermissionError(f"cannot read {root}")
    app = ExpwatchApp(options)
    app.run()
    # A crash (an exception Textual caught and printed) must not look like a normal quit.
    return app.return_code or 0
