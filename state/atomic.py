"""Atomic, durable file writes and the per-experiment advisory lock."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_IOV_MAX = max(16, min(1024, os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024))
"""At most this many buffers per ``writev``."""


def write_parts(fd: int, parts: Sequence[bytes]) -> None:
    """Write ``parts`` one after another, whole, with as few ``writev`` calls as the system allows."""
    views = [memoryview(part) for part in parts if part]
    most = min(_IOV_MAX, len(views))
    start = 0
    while start < len(views):
        written = os.writev(fd, views[start:start + most])
        while written:
            if written >= len(views[start]):
                written -= len(views[start])
                start += 1
            else:  # a short write: the rest of this part goes first next time
                views[start] = views[start][written:]
                written = 0


def atomic_write_bytes(
    path: Path, data: bytes | Sequence[bytes], *, tmp_dir: Path, durable: bool = True, mode: int | None = None
) -> None:
    """Replace ``path`` with ``data`` (bytes, or parts written in order) so that readers see the old or the new file.

    The temp file lives in ``tmp_dir`` (same filesystem, outside the watched
    set); it is written, fsynced, given the original file's mode, renamed
    over the target, and the directory is fsynced. On any error the temp file
    is removed and the original is untouched.
    """
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
    # The temp name adds a random part: cut the prefix so a long target name still fits.
    prefix = path.name.encode()[:200].decode(errors="ignore")
    import tempfile  # here: it loads shutil, random and bz2, 6 ms of every start-up that writes nothing

    fd, tmp_name = tempfile.mkstemp(prefix=f"{prefix}.", suffix=".tmp", dir=tmp_dir)
    try:
        try:
            write_parts(fd, [data] if isinstance(data, bytes) else data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    if durable:
        fsync_dir(path.parent)


class LockTimeout(TimeoutError):
    pass


@contextlib.contextmanager
def exclusive_lock(
    lock_path: Path, *, timeout: float | None = 10.0, open_fd: Callable[[], int] | None = None
) -> Iterator[None]:
    """Hold ``fcntl.flock`` on a sidecar lock file (blocking, with a time limit).

    ``open_fd`` opens the lock file instead of a plain ``os.open`` (the store
    passes one that refuses symlinks and strange folders).
    """
    import time

    fd = open_fd() if open_fd is not None else os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if deadline else 0))
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                if deadline is not None and time.monotonic() > deadline:
                    raise LockTimeout(f"could not lock {lock_path.name} within {timeout}s") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.02)
        yield
    finally:
        os.close(fd)
