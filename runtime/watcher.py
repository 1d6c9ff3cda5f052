"""Watch a state directory: inotify events (watchfiles off Linux) as change hints for its source.

The events only say where to look; ``state.sources.DirectorySource.hint`` re-stats
those files and re-reads the changed ones. A periodic full reconcile catches
dropped events, and ``--poll`` mode (network filesystems, where inotify sees
nothing) is that scan on a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

from runtime import inotify
from state.paths import MANIFEST_NAME
from state.paths import SIDECAR_DIR, is_candidate_study_dir

#: A burst of writes is one batch: events are gathered until none came for QUIET_MS, for at
#: most DEBOUNCE_MS; a batch comes at most every BATCH_GAP_MS (the first change after a quiet
#: spell at once). (watchfiles, off Linux: looks for events every STEP_MS.)
DEBOUNCE_MS = 40
QUIET_MS = 2
BATCH_GAP_MS = 50
STEP_MS = 20
#: With nothing changing, ``watch_directory`` still yields an empty batch this often (deferred re-reads).
IDLE_YIELD_MS = 1000


async def watch_directory(root: Path, stop: asyncio.Event, fresh: set[Path] | None = None) -> AsyncIterator[set[str]]:
    """Batches of changed paths (inotify; watchfiles off Linux), until ``stop`` is set or the directory goes.

    An empty batch comes every ``IDLE_YIELD_MS`` when nothing changes, so a
    caller can ``hint`` deferred files once they are due. A directory
    removed or replaced leaves inotify watching the old one in silence, so
    the iteration ends (with ``stop`` unset) on an event for the directory
    itself or when another directory, or none, stands at the path (checked
    on every batch, quiet ones included; tmpfs may even reuse the inode,
    hence the event): the caller rescans and watches anew.

    Only folders that can hold what a source reads are watched, each without
    recursion: the state directory, its study folders (those holding a
    ``manifest.json``, plus the folders that appeared while watching, kept in
    the caller's ``fresh`` set: a new study writes its manifest after making
    its folder), and the device snapshot folder (or, until that exists, the
    sidecar folder). A folder that appears and should be watched ends the
    iteration after its batch, so the next watch includes it. A results tree
    with thousands of other subfolders costs no watch for each.
    """

    def interesting(_change: object, path: str) -> bool:
        p = Path(path)
        if p == root or p in (sidecar, devices):
            return True
        if p.parent == root:
            # State files, and folders that may be new studies.
            return p.suffix == ".json" or is_candidate_study_dir(p.name)
        if p.parent.parent == root and p.name == MANIFEST_NAME:
            return True
        return p.parent == devices and p.suffix == ".json"

    root = Path(os.path.abspath(root))
    watched = _dir_identity(root)
    text = str(root)
    sidecar = root / SIDECAR_DIR
    devices = sidecar / "devices"
    fresh = fresh if fresh is not None else set()
    fresh &= {p for p in fresh if _is_real_dir(p)}
    studies = {root / name for name in _names(root) if is_candidate_study_dir(name) and (root / name / MANIFEST_NAME).is_file()}
    studies |= fresh
    folders = [root, *sorted(studies)]
    if _is_real_dir(devices):
        folders.append(devices)
    elif _is_real_dir(sidecar):
        folders.append(sidecar)
    # A folder that appears and should be watched ends this watch; the next one includes it.
    restart_on = set() if devices in folders else {str(devices)} | ({str(sidecar)} if sidecar not in folders else set())
    watch = _inotify_watch(folders)
    source = _inotify_batches(watch, root, stop) if watch is not None else _watchfiles_batches(folders, stop)
    async with contextlib.aclosing(source) as batches:
        async for changed in batches:
            paths = {path for path in changed if interesting(None, path)}
            if text in paths or _dir_identity(root) != watched:
                return
            if restart_on & paths:
                return
            new_studies = {
                Path(p) for p in paths
                if Path(p).parent == root and is_candidate_study_dir(Path(p).name) and Path(p) not in studies and _is_real_dir(Path(p))
            }
            yield paths
            if new_studies:
                fresh |= new_studies
                return


def _inotify_watch(folders: list[Path]) -> inotify.Inotify | None:
    """An inotify watch on ``folders``, or None where there is none to have (not Linux, or the
    user's watch or instance limit reached): watchfiles then polls instead."""
    if not inotify.available():
        return None
    try:
        return inotify.Inotify(folders)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOSYS):
            return None
        raise


async def _inotify_batches(watch: inotify.Inotify, root: Path, stop: asyncio.Event) -> AsyncIterator[set[str]]:
    """Changed paths as inotify reports them, gathered into bursts; an empty set every
    IDLE_YIELD_MS when nothing comes; ``root`` among them when the kernel dropped events
    (the caller then rescans and watches anew).

    watchfiles' watcher wakes every ``step`` (taking the GIL to ask its stop event) and hands a
    change over one to two steps after it came: with step=20 an idle dashboard spent 0.25 % of a
    core on it. The inotify descriptor sits in the event loop's selector instead.
    """
    loop = asyncio.get_running_loop()
    with watch:
        readable = asyncio.Event()

        def woke() -> None:
            # Unregistered at once: a descriptor left readable while the caller works on a batch
            # would otherwise wake the loop on every turn.
            loop.remove_reader(watch.fd)
            readable.set()

        stopped = asyncio.ensure_future(stop.wait())
        last_batch = -1.0
        try:
            while not stop.is_set():
                readable.clear()
                loop.add_reader(watch.fd, woke)
                ready = asyncio.ensure_future(readable.wait())
                await asyncio.wait({ready, stopped}, timeout=IDLE_YIELD_MS / 1000, return_when=asyncio.FIRST_COMPLETED)
                ready.cancel()
                loop.remove_reader(watch.fd)
                if stop.is_set():
                    return
                if readable.is_set() and (wait := last_batch + BATCH_GAP_MS / 1000 - loop.time()) > 0:
                    # Changes keep coming (a runner writing many times a second): they are read
                    # together, so each batch's re-read, redraw and thread hops serve several.
                    await asyncio.sleep(wait)
                paths: set[str] = set()
                deadline = loop.time() + DEBOUNCE_MS / 1000
                try:
                    while True:
                        found = watch.events()
                        paths |= found
                        if not found or loop.time() >= deadline:
                            break
                        await asyncio.sleep(QUIET_MS / 1000)
                except inotify.Overflow:
                    paths.add(str(root))
                if paths:
                    last_batch = loop.time()
                yield paths
        finally:
            loop.remove_reader(watch.fd)
            stopped.cancel()


async def _watchfiles_batches(folders: list[Path], stop: asyncio.Event) -> AsyncIterator[set[str]]:
    from watchfiles import awatch

    async for changes in awatch(
        *folders,
        stop_event=stop,
        debounce=DEBOUNCE_MS,
        step=STEP_MS,
        rust_timeout=IDLE_YIELD_MS,
        yield_on_timeout=True,
        recursive=False,
        ignore_permission_denied=True,
    ):
        yield {path for _change, path in changes}


def _names(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _dir_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None
