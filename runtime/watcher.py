"""Watch a state directory: watchfiles events as change hints for its source.

Study manifests one folder down (``results/<study>/manifest.json``) and new
study folders count as well. The events only say where to look; ``state.sources.DirectorySource.hint`` re-stats
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
from state.paths import is_candidate_study_dir

#: watchfiles settings: group a burst of writes into one batch, but answer fast.
DEBOUNCE_MS = 40
STEP_MS = 20
#: With nothing changing, ``watch_directory`` still yields an empty batch this often (deferred re-reads).
IDLE_YIELD_MS = 1000


async def watch_directory(root: Path, stop: asyncio.Event) -> AsyncIterator[set[str]]:
    """Batches of changed paths from watchfiles, until ``stop`` is set or the directory goes.

    An empty batch comes every ``IDLE_YIELD_MS`` when nothing changes, so a
    caller can ``hint`` deferred files once they are due. A directory
    removed or replaced leaves inotify watching the old one in silence, so
    the iteration ends (with ``stop`` unset) on an event for the directory
    itself or when another directory, or none, stands at the path (checked
    on every batch, quiet ones included; tmpfs may even reuse the inode,
    hence the event): the caller rescans and watches anew.
    """
    from watchfiles import awatch

    def interesting(_change: object, path: str) -> bool:
        p = Path(path)
        if p == root:
            return True
        if p.parent == root:
            # State files, and folders that may be new studies (``results/<study>/``).
            return p.suffix == ".json" or is_candidate_study_dir(p.name)
        if p.parent.parent == root and p.name == MANIFEST_NAME:
            return True
        return p.parent.name == "devices" and p.suffix == ".json"

    root = Path(os.path.abspath(root))
    watched = _dir_identity(root)
    text = str(root)
    async for changes in awatch(
        root,
        stop_event=stop,
        watch_filter=interesting,
        debounce=DEBOUNCE_MS,
        step=STEP_MS,
        rust_timeout=IDLE_YIELD_MS,
        yield_on_timeout=True,
        recursive=True,
        ignore_permission_denied=True,
    ):
        paths = {path for _change, path in changes}
        if text in paths or _dir_identity(root) != watched:
            return
        yield paths


def _dir_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None
