"""A worker's side of the results spool: each result line copied into a shared mapping of the file.

A line copied into a ``MAP_SHARED`` mapping is in the page cache, as a
``write`` would have put it: a SIGKILL of the worker or of the coordinator
right after loses nothing, and the replay reads it with plain reads. A
``write`` per run was the worker's largest cost at 100,000 runs (py-spy: 130
of its 355 samples in the spool's ``os.write``); the copy is a ``memcpy``.

The file grows a window at a time, reserved with ``posix_fallocate`` first, so
a full disk is an ``OSError`` here, never a SIGBUS on a later copy. Past the
last line, a file whose worker was killed holds NUL bytes up to the window's
end; the replay passes over them as over a torn line. ``close`` cuts them.
A file system that cannot reserve or map (some network and FUSE ones) gets
each line with ``pwrite`` instead, as before the mapping: slower, as safe.

Stdlib only: workers start without the state layer.
"""

from __future__ import annotations

import errno
import mmap
import os

WINDOW = 1 << 16
"""Bytes mapped and reserved at a time: about 600 small results between two remaps (150 at 100,000 runs,
a few ms in all). Kept small because the reserve is space a full disk no longer has for the state file:
a killed worker leaves up to this much padding, and a result bigger than what is left fails to spool
(then the spool gives its padding back) instead of taking the last of the disk."""


class SpoolAppender:
    """Appends whole lines to one spool file (opened for reading and writing) through a mapping."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.end = os.fstat(fd).st_size
        """Where the next line goes: the end of what was appended (the file may be longer, padded)."""
        self._map: mmap.mmap | None = None
        self._base = 0
        self._limit = 0
        self.mapped = True
        """False once the file system refused to reserve or map: lines go in with ``pwrite``."""

    def append(self, data: bytes) -> None:
        """Put ``data`` after the last line, whole; an ``OSError`` (a full disk) leaves none of it in."""
        start = self.end
        stop = start + len(data)
        if self.mapped and stop > self._limit:
            try:
                self._remap(start, stop)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise
                self._unmap()
                os.ftruncate(self.fd, start)  # a reserve made before the mapping was refused goes back
                self.mapped = False
        if not self.mapped:
            self._pwrite(data, start)
            self.end = stop
            return
        assert self._map is not None
        self._map[start - self._base:stop - self._base] = data
        self.end = stop

    def _pwrite(self, data: bytes, at: int) -> None:
        """The whole of ``data`` at ``at`` (short writes continued); on an error, none of it stays."""
        done = 0
        try:
            while done < len(data):
                done += os.pwrite(self.fd, data[done:], at + done)
        except OSError:
            if done:
                os.ftruncate(self.fd, at)
            raise

    def _unmap(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        self._limit = 0

    def _remap(self, start: int, stop: int) -> None:
        self._unmap()
        base = start - start % mmap.ALLOCATIONGRANULARITY
        size = max(stop - base, WINDOW)
        os.posix_fallocate(self.fd, base, size)
        self._map = mmap.mmap(self.fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE,
                              offset=base)
        self._base, self._limit = base, base + size

    def close(self) -> None:
        """Unmap and cut the file after the last line; the descriptor stays open."""
        self._unmap()
        os.ftruncate(self.fd, self.end)
