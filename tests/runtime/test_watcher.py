"""The directory watcher on inotify: which changes become hints, when a watch ends, the fallback."""

from __future__ import annotations

import asyncio
import errno
import shutil
from pathlib import Path

import pytest

from runtime import inotify, watcher
from runtime.watcher import watch_directory

pytestmark = pytest.mark.skipif(not inotify.available(), reason="inotify is Linux's")
STUDY = "bench_2026-01-01T00-00-00"


@pytest.fixture(autouse=True)
def quick_idle_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty batch every 20 ms: the first one says the watch is set up."""
    monkeypatch.setattr(watcher, "IDLE_YIELD_MS", 20)


class Watching:
    """One ``watch_directory`` iteration running in a task, its batches collected."""

    def __init__(self, root: Path, fresh: set[Path] | None = None) -> None:
        self.root = root
        self.stop = asyncio.Event()
        self.seen: set[str] = set()
        self.batches = 0
        self.ended = False
        self.task = asyncio.create_task(self._run(fresh))

    async def _run(self, fresh: set[Path] | None) -> None:
        async for paths in watch_directory(self.root, self.stop, fresh):
            self.seen |= paths
            self.batches += 1
        self.ended = True

    async def started(self) -> None:
        await self.until(lambda: self.batches > 0, "a first (idle) batch")

    async def until(self, predicate, what: str, timeout: float = 10.0) -> None:
        async def poll() -> None:
            while not predicate():
                await asyncio.sleep(0.005)

        try:
            await asyncio.wait_for(poll(), timeout)
        except TimeoutError:
            raise AssertionError(f"{what}; seen {sorted(self.seen)}") from None

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)


async def test_state_files_study_manifests_and_device_snapshots_are_hints(tmp_path: Path):
    (tmp_path / STUDY).mkdir()
    (tmp_path / STUDY / "manifest.json").write_text("{}")
    devices = tmp_path / ".expwatch" / "devices"
    devices.mkdir(parents=True)
    w = Watching(tmp_path)
    await w.started()
    (tmp_path / "exp-1.json").write_text("{}")
    (tmp_path / ".exp-1.json.tmp").write_text("a writer's temporary file: not a hint")
    (tmp_path / STUDY / "manifest.json").write_text('{"status": "running"}')
    (devices / "cell.json").write_text("{}")
    want = {str(tmp_path / "exp-1.json"), str(tmp_path / STUDY / "manifest.json"), str(devices / "cell.json")}
    await w.until(lambda: want <= w.seen, "the three hints")
    assert str(tmp_path / ".exp-1.json.tmp") not in w.seen
    assert not w.ended
    await w.close()


async def test_a_new_study_folder_is_a_hint_and_the_next_watch_includes_it(tmp_path: Path):
    fresh: set[Path] = set()
    w = Watching(tmp_path, fresh)
    await w.started()
    (tmp_path / STUDY).mkdir()
    await w.until(lambda: w.ended, "the end of the watch that saw the folder come")
    assert str(tmp_path / STUDY) in w.seen and fresh == {tmp_path / STUDY}
    again = Watching(tmp_path, fresh)
    await again.started()
    (tmp_path / STUDY / "manifest.json").write_text("{}")
    await again.until(lambda: str(tmp_path / STUDY / "manifest.json") in again.seen, "the manifest in the new folder")
    await again.close()


async def test_a_sidecar_made_after_the_watch_began_leads_to_its_device_snapshots(tmp_path: Path):
    """A first runner makes .expwatch, then its devices folder: each ends a watch so the next one
    includes it, and the snapshots written there are hints (they waited for a reconcile before)."""
    w = Watching(tmp_path)
    await w.started()
    sidecar = tmp_path / ".expwatch"
    sidecar.mkdir()
    await w.until(lambda: w.ended, "the end of the watch that saw the sidecar folder come")
    again = Watching(tmp_path)
    await again.started()
    (sidecar / "devices").mkdir()
    await again.until(lambda: again.ended, "the end of the watch that saw the devices folder come")
    third = Watching(tmp_path)
    await third.started()
    (sidecar / "devices" / "cell.json").write_text("{}")
    await third.until(lambda: str(sidecar / "devices" / "cell.json") in third.seen, "the device snapshot")
    await third.close()


async def test_quiet_directory_yields_empty_batches(tmp_path: Path):
    w = Watching(tmp_path)
    await w.until(lambda: w.batches >= 2, "idle batches")
    assert w.seen == set()
    await w.close()


async def test_the_watch_ends_when_the_directory_goes(tmp_path: Path):
    root = tmp_path / "state"
    root.mkdir()
    w = Watching(root)
    await w.started()
    shutil.rmtree(root)
    await w.until(lambda: w.ended, "the end of the watch")
    assert not w.stop.is_set()


async def test_a_dropped_event_queue_ends_the_watch_for_a_rescan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def overflow(self: inotify.Inotify) -> set[str]:
        raise inotify.Overflow("inotify queue overflow")

    w = Watching(tmp_path)
    await w.started()
    monkeypatch.setattr(inotify.Inotify, "events", overflow)
    (tmp_path / "exp-2.json").write_text("{}")
    await w.until(lambda: w.ended, "the end of the watch")


async def test_no_inotify_watch_left_falls_back_to_watchfiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def exhausted(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")  # the user's inotify watch limit

    monkeypatch.setattr(inotify, "Inotify", exhausted)
    w = Watching(tmp_path)
    await w.started()  # watchfiles' own timeout batch: its watcher is up
    (tmp_path / "exp-1.json").write_text("{}")
    await w.until(lambda: str(tmp_path / "exp-1.json") in w.seen, "a hint through watchfiles")
    await w.close()


def test_an_unwatchable_state_directory_is_an_error_a_missing_study_folder_is_not(tmp_path: Path):
    with pytest.raises(OSError):
        inotify.Inotify([tmp_path / "missing"])
    with inotify.Inotify([tmp_path, tmp_path / "gone-study"]) as watch:
        assert watch.events() == set()
