"""The dashboard starts a hub's first scan and its follow thread together: the hub is read once, not twice at once."""

from __future__ import annotations

import threading
from pathlib import Path

from state.hub.codec import encode_entry
from state.hub.schema import Hub, record_version
from state.sources import Delta, DirectorySource, HubSource
from tests.dashboard.conftest import populate
from tests.hub.redis_server import RedisServer


def _publish_directory(url: str, directory: Path) -> set[str]:
    """A state directory published as host gpu1 (as its agent would); the board keys it gives."""
    populate(directory)
    source = DirectorySource(directory, read_only=True)
    list(source.initial_batches())
    hub = Hub(url)
    for entry in source.entries().values():
        version = record_version(entry.version.mtime_ns if entry.version is not None else None)
        hub.publish("gpu1", "lab", entry.key, version=version, summary=encode_entry(entry), verdict="", doc=b"")
    hub.close()
    return {f"gpu1/lab/{key}" for key in source.entries()}


def test_follow_and_the_first_scan_started_together_read_the_hub_once(redis_server: RedisServer, tmp_path: Path):
    keys = _publish_directory(redis_server.url, tmp_path)
    source = HubSource(redis_server.url, name="fleet", block_ms=100)
    scans: list[str] = []
    scanning, release = threading.Event(), threading.Event()
    scan_records = source.hub.scan_records

    def held_scan(*args, **kwargs):
        scans.append(threading.current_thread().name)
        scanning.set()
        release.wait(10)  # still reading when the other thread asks for its first picture
        yield from scan_records(*args, **kwargs)

    source.hub.scan_records = held_scan  # type: ignore[method-assign]
    stop = threading.Event()
    followed: list[Delta] = []
    follow = threading.Thread(target=lambda: followed.extend(source.follow(stop)), name="follow")
    first: list[Delta] = []
    initial = threading.Thread(target=lambda: first.extend(source.initial_batches()), name="initial")
    try:
        follow.start()
        assert scanning.wait(10)
        initial.start()
        release.set()
        initial.join(10)
        assert not initial.is_alive()
    finally:
        release.set()
        stop.set()
        follow.join(10)
    assert scans == ["follow"], "one scan of the hub, by whichever thread came first"
    assert {k for d in first for k in d.upserts} == keys, "the first batches still hold the whole picture"
    assert {k for d in followed for k in d.upserts} == keys
