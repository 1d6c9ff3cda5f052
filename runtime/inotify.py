"""Linux inotify through ctypes: change hints the moment the kernel has them, and no wake-ups
while nothing changes.

watchfiles' watcher sleeps ``step`` milliseconds between looks at what its thread collected
(and takes the GIL to ask the stop event each time): with ``step=20`` an idle dashboard spent
0.25 % of a core on it, and a change waited one to two steps before anyone heard of it. Here
the inotify descriptor sits in the event loop's selector: nothing runs until an event comes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

#: What a watch asks for: content written, names come and go, the directory itself goes.
WATCH_MASK = (
    IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
    | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
)
_HEADER = struct.Struct("iIII")


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def available() -> bool:
    return _LIBC is not None


class Overflow(Exception):
    """The kernel dropped events (its queue was full): only a full rescan knows what changed."""


class Inotify:
    """One inotify instance watching ``folders`` (each without recursion; the first must be
    watchable, a later one that is gone or unreadable is left out).

    ``events()`` returns the changed paths read so far (never blocking); a watched
    folder among them means that folder itself was removed or moved away.
    """

    def __init__(self, folders: Iterable[Path]) -> None:
        if _LIBC is None:
            raise OSError(errno.ENOSYS, "inotify is not available here")
        self.fd = _LIBC.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        self._dirs: dict[int, Path] = {}
        try:
            for i, folder in enumerate(folders):
                self._add(folder, required=i == 0)
        except BaseException:
            self.close()
            raise

    def _add(self, path: Path, *, required: bool) -> None:
        assert _LIBC is not None
        wd = _LIBC.inotify_add_watch(self.fd, os.fsencode(path), WATCH_MASK)
        if wd < 0:
            code = ctypes.get_errno()
            if not required and code in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                return
            raise OSError(code, f"{os.strerror(code)}: cannot watch {path}")
        self._dirs[wd] = path

    def events(self) -> set[str]:
        """The paths of the events waiting now (empty when none); raises ``Overflow``."""
        paths: set[str] = set()
        for wd, mask, name in self._read():
            if mask & IN_Q_OVERFLOW:
                raise Overflow("inotify queue overflow")
            directory = self._dirs.get(wd)
            if directory is None:
                continue
            if mask & IN_IGNORED:
                del self._dirs[wd]
            elif mask & (IN_DELETE_SELF | IN_MOVE_SELF):
                paths.add(str(directory))
            else:
                paths.add(str(directory / name))
        return paths

    def _read(self) -> Iterator[tuple[int, int, str]]:
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return
            offset = 0
            while offset + _HEADER.size <= len(data):
                wd, mask, _cookie, size = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size
                name = data[offset : offset + size].split(b"\0", 1)[0]
                offset += size
                yield wd, mask, os.fsdecode(name)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Inotify:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


__all__ = ["Inotify", "Overflow", "available"]
