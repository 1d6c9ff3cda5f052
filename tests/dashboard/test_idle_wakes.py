"""An idle screen wakes only when something it shows changes: a GPU panel when a sample shows
something new; and then it shows the change by itself."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from app.app import DashboardOptions, ExpwatchApp
from app.messages import GpuSampled
from widgets.gpu_panel import SPARK_SAMPLES, GpuPanel

from tests.dashboard.conftest import FROZEN, ScriptedProbe, StaticGpuSource, lem_file, write_raw
from tests.dashboard.helpers import wait_for


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
