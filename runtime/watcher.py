"""Watch a state directory: watchfiles events as change hints for its source.

The events only say where to look; ``state.sources.DirectorySource.hint`` re-stats
those files and re-reads the changed ones. A periodic full reconcile catches
dropped events, and ``--poll`` mode (network filesystems, where inotify sees
nothing) is that scan on a timer.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

from state.lem_study import MANIFEST_NAME
from state.paths import SIDECAR_DIR, is_candidate_study_dir

#: watchfiles settings: group a burst of writes into one batch, but answer fast.
DEBOUNCE_MS = 40
STEP_MS = 20
#: With nothing changing, ``watch_directory`` still yields an empty batch this often (deferred re-reads).
IDLE_YIELD_MS = 1000


async def watch_directory(root: Path, stop: asyncio.Event, fresh: set[Path] | None = None) -> AsyncIterator[set[str]]:
    """Batches of changed paths from watchfiles, until ``stop`` is set or the directory goes.

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
    from watchfiles import awatch

    def interesting(_change: object, path: str) -> bool:
        p = Path(path)
        if p == root:
            return True
        if p.parent == root:
            # State files, and folders that may be new studies.
            return p.suffix == ".json" or is_candidate_study_dir(p.name)
        if p.parent.parent == root and p.name == MANIFEST_NAME:
            return True
        if p in (sidecar, devices):
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
    async for changes in awatch(
        *folders,
        stop_event=stop,
        watch_filter=interesting,
        debounce=DEBOUNCE_MS,
        step=STEP_MS,
        rust_timeout=IDLE_YIELD_MS,
        yield_on_timeout=True,
        recursive=False,
        ignore_permission_denied=True,
    ):
        paths = {path for _change, path in changes}
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
