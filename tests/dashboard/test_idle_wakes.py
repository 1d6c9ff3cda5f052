"""An idle screen wakes only when something it shows changes: a clock text (an age, an elapsed
time, an ETA) when it reads differently, a GPU panel when a sample shows something new; and then
it shows the change by itself."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from pathlib import Path

from app.app import DashboardOptions, ExpwatchApp
from app.messages import GpuSampled
from widgets.experiment_table import ExperimentTable
from widgets.gpu_panel import SPARK_SAMPLES, GpuPanel

from tests.dashboard.conftest import ALIVE_PID, FROZEN, ScriptedProbe, StaticGpuSource, lem_file, native_doc, write_raw
from tests.dashboard.helpers import wait_for


def _app(root: Path, clock) -> ExpwatchApp:
    options = DashboardOptions(sources=(root,), watch=False, gpus=False)
    return ExpwatchApp(options, clock=clock, probe=ScriptedProbe(), gpu_source=StaticGpuSource())


async def test_an_age_in_seconds_moves_on_screen_by_itself(tmp_path: Path) -> None:
    """No file changes and nobody ticks the table: its own look, due when the text changes, repaints it."""
    model = lem_file("recent", "completed", None)
    model.last_updated = (FROZEN - timedelta(seconds=5)).replace(tzinfo=None)
    write_raw(tmp_path, model)
    start = time.monotonic()
    app = _app(tmp_path, lambda: FROZEN + timedelta(seconds=time.monotonic() - start))
    async with app.run_test(size=(120, 20)) as pilot:
        table = app.query_one(ExperimentTable)
        await wait_for(pilot, lambda: app.scan_complete and table.row_count == 1, what="the row")
        painted: set[str] = set()
        render_line = table.render_line

        def recording(y: int):
            strip = render_line(y)
            if y == 1:
                painted.add("".join(segment.text for segment in strip))
            return strip

        table.render_line = recording  # what the screen paints, never asked for here
        await wait_for(pilot, lambda: len(painted) >= 2, what="the age moving on")
        assert table.clock_look_in is not None and table.clock_look_in <= 1.1  # the next second's text


async def test_an_idle_screen_of_old_rows_looks_again_only_when_their_minute_turns(tmp_path: Path) -> None:
    for n in range(3):
        write_raw(tmp_path, lem_file(f"old-{n}", "completed", None))  # updated an hour before the frozen clock
    app = _app(tmp_path, lambda: FROZEN)
    async with app.run_test(size=(120, 20)) as pilot:
        table = app.query_one(ExperimentTable)
        await wait_for(pilot, lambda: app.scan_complete and table.row_count == 3, what="the rows")
        await pilot.pause()
        rows = [table.get_row(key) for key in table.keys]
        assert [table._clock_change(row) for row in rows] == [60.0, 60.0, 60.0]  # noqa: SLF001 - "1h00m" turns into "1h01m"
        assert table.refresh_if_changed() == 0  # a look at the same clock repaints nothing
        look_in = table.clock_look_in
        assert look_in is not None and 30.0 < look_in <= 60.1


async def test_each_rows_next_change_is_when_its_texts_first_differ(tmp_path: Path) -> None:
    """Running (alive, with an ETA), finished and stale rows: the computed change is never later than
    the first moment any of the row's clock texts reads differently, found by stepping the clock."""
    write_raw(tmp_path, native_doc("running-alive", "running", pid=ALIVE_PID, runs=7, done=3))
    write_raw(tmp_path, native_doc("running-dead", "running", pid=4343, runs=4, done=1))
    write_raw(tmp_path, lem_file("finished", "completed", None))
    app = _app(tmp_path, lambda: FROZEN)
    async with app.run_test(size=(120, 20)) as pilot:
        table = app.query_one(ExperimentTable)
        await wait_for(pilot, lambda: app.scan_complete and table.row_count == 3, what="the rows")
        await wait_for(pilot, lambda: all(table.get_row(k).verdict is not None for k in table.keys if "running" in str(k)), what="verdicts")
        for key in table.keys:
            row = table.get_row(key)
            table._now = FROZEN  # noqa: SLF001
            due = table._clock_change(row)  # noqa: SLF001
            texts = table._clock_texts(row)  # noqa: SLF001
            first = None
            for step in range(1, 61 * 20 + 1):
                table._now = FROZEN + timedelta(seconds=step / 20)  # noqa: SLF001
                if table._clock_texts(row) != texts:  # noqa: SLF001
                    first = step / 20
                    break
            assert due is not None, key
            if first is None:
                assert due >= 61.0, (key, due)
            else:
                assert first - 0.05 <= due <= first, (key, due, first)


class ChangingGpus(StaticGpuSource):
    """The same sample every time, until the test changes GPU 0's utilisation."""

    utilization = 50.0

    def sample(self):
        snapshot = super().sample()
        first = dataclasses.replace(snapshot.gpus[0], utilization_gpu=self.utilization)
        return dataclasses.replace(snapshot, gpus=(first, *snapshot.gpus[1:]))


async def test_a_gpu_sample_that_shows_nothing_new_is_not_posted(tmp_path: Path) -> None:
    write_raw(tmp_path, lem_file("one", "completed", None))
    source = ChangingGpus()
    options = DashboardOptions(sources=(tmp_path,), watch=False, gpus=True, refresh=0.02)
    app = ExpwatchApp(options, clock=lambda: FROZEN, probe=ScriptedProbe(), gpu_source=source)
    posted: list[GpuSampled] = []
    post_message = app.post_message

    def counting(message):
        if isinstance(message, GpuSampled):
            posted.append(message)
        return post_message(message)

    app.post_message = counting  # type: ignore[method-assign]
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app._gpu_sampler is not None and app._gpu_sampler.ticks > SPARK_SAMPLES + 2, what="a full sparkline")  # noqa: SLF001
        await wait_for(pilot, lambda: app.scan_complete, what="the scan")
        sampler = app._gpu_sampler  # noqa: SLF001
        ticks, count = sampler.ticks, len(posted)
        await wait_for(pilot, lambda: sampler.ticks >= ticks + 10, what="ten more samples")
        assert len(posted) == count  # ten samples, the same to the eye: nothing posted

        panel = app.query_one(GpuPanel)
        source.utilization = 97.0
        await wait_for(pilot, lambda: panel.shown is not None and "97%" in panel.shown.plain, what="the new utilisation")
        assert len(posted) > count


async def test_a_new_theme_redraws_the_panels(tmp_path: Path) -> None:
    """The panels' lines carry the theme's colours, and no new sample comes to draw them again."""
    write_raw(tmp_path, lem_file("one", "completed", None))
    options = DashboardOptions(sources=(tmp_path,), watch=False, gpus=True, refresh=0.02)
    app = ExpwatchApp(options, clock=lambda: FROZEN, probe=ScriptedProbe(), gpu_source=StaticGpuSource())
    async with app.run_test(size=(120, 30)) as pilot:
        panel = app.query_one(GpuPanel)
        await wait_for(pilot, lambda: panel.shown is not None and "%" in panel.shown.plain, what="the GPUs")
        await wait_for(pilot, lambda: app._gpu_sampler.ticks > SPARK_SAMPLES + 2, what="a full sparkline")  # noqa: SLF001
        before = panel.shown
        app.theme = "nord"  # another accent colour than the default theme's
        await wait_for(pilot, lambda: panel.shown.spans != before.spans, what="the panel in the new theme's colours")
        assert panel.shown.plain == before.plain
