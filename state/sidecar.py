"""Opening expwatch's sidecar files and anything else a data file names, without being led astray.

A state directory is often shared (a group-writable results folder, NFS) and
expwatch is often run as root. Whoever can write there can replace
``.expwatch/journal.jsonl`` or ``.expwatch/locks/<id>.lock`` by a symlink to a
file elsewhere, or a whole sidecar folder by a symlink to ``/etc``, and wait
for expwatch to write through it; or point a step's ``file``, a log or a
device snapshot at ``/dev/zero`` and wait for it to read forever. So:

- sidecar folders are walked one component at a time from the state
  directory with ``O_NOFOLLOW | O_DIRECTORY`` and must be real directories
  (not symlinks); when running as root they must also belong to root or to
  the state directory's owner;
- sidecar files are opened relative to that folder with ``O_NOFOLLOW``, must
  be regular files with a single link (a hard link to a file elsewhere is
  refused too);
- every read of a file named by data goes through ``read_regular``: a regular
  file (checked on the open descriptor, opened non-blocking so a FIFO cannot
  hang), at most a size limit read.

A refusal is an ``UnsafeSidecarError`` that names the path and says why.
``StateStore.check_sidecars`` runs every check before an action writes
anything, so a bad sidecar stops the action before the state file changes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from state.paths import SIDECAR_DIR, UnsafePathError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | os.O_CLOEXEC


class UnsafeSidecarError(UnsafePathError):
    """A sidecar path is a symlink, not a directory or regular file, or owned by a stranger."""


def _refuse(path: Path, why: str) -> UnsafeSidecarError:
    return UnsafeSidecarError(f"refusing to use {path}: {why}")


def file_kind(mode: int) -> str:
    """What an ``st_mode`` is, for a reason a reader can act on ("a named pipe", "a device")."""
    kinds = (
        (stat.S_ISLNK, "a symlink"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    )
    return next((name for test, name in kinds if test(mode)), "not a plain file")


def _check_owner(path: Path, st: os.stat_result, root_uid: int) -> None:
    euid = os.geteuid()
    if euid == 0 and st.st_uid not in (0, root_uid):
        raise _refuse(path, f"owned by uid {st.st_uid}, not by root or the state directory's owner (uid {root_uid})")


@contextlib.contextmanager
def sidecar_dir_fd(root: Path, *parts: str, create: bool) -> Iterator[int]:
    """An open descriptor of ``root/.expwatch/<parts...>``, every component checked.

    With ``create`` missing folders are made (mode 0o755 less the umask);
    without it a missing folder raises ``FileNotFoundError``.
    """
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fds = [root_fd]
    try:
        root_uid = os.fstat(root_fd).st_uid
        here = Path(root)
        for name in (SIDECAR_DIR, *parts):
            here = here / name
            parent = fds[-1]
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=parent)
                fd = _open_dir_or_refuse(name, parent, here)
            except OSError as exc:
                raise _why_not_dir(name, parent, here, exc) from None
            fds.append(fd)
            _check_owner(here, os.fstat(fd), root_uid)
        yield fds[-1]
    finally:
        for fd in fds:
            os.close(fd)


def _open_dir_or_refuse(name: str, parent: int, here: Path) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        raise _why_not_dir(name, parent, here, exc) from None


def _why_not_dir(name: str, parent: int, here: Path, exc: OSError) -> OSError:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        try:
            mode = os.lstat(name, dir_fd=parent).st_mode
        except OSError:
            return exc
        return _refuse(here, f"it is {file_kind(mode)}, not a real directory")
    return exc


def open_sidecar_file(root: Path, parts: tuple[str, ...], name: str, flags: int, mode: int = 0o644) -> int:
    """``os.open`` of ``root/.expwatch/<parts>/<name>`` with every check; the caller closes it.

    The folders are created when ``flags`` has ``O_CREAT``. The file must be
    a regular file with one link, whatever ``flags`` say.
    """
    create = bool(flags & os.O_CREAT)
    path = Path(root, SIDECAR_DIR, *parts, name)
    with sidecar_dir_fd(root, *parts, create=create) as dir_fd:
        try:
            fd = os.open(name, flags | _NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _refuse(path, "it is a symlink") from None
            if exc.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
                raise _refuse(path, "it is not a regular file") from None
            raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, f"it is {file_kind(st.st_mode)}, not a regular file")
        if st.st_nlink > 1:
            raise _refuse(path, f"it has {st.st_nlink} hard links (one may be a file outside)")
        # Back to blocking: O_NONBLOCK only kept a FIFO from hanging the open.
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def sidecar_dir(root: Path, *parts: str) -> Path:
    """The path of a sidecar folder, created and checked (for APIs that take a path, like ``mkstemp``)."""
    with sidecar_dir_fd(root, *parts, create=True):
        pass
    return Path(root, SIDECAR_DIR, *parts)


def _open_regular(path: Path | str, *, follow: bool = True, dir_fd: int | None = None) -> tuple[int, os.stat_result]:
    """A descriptor of a regular file (non-blocking open: a FIFO cannot hang) and its ``fstat``."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else _NOFOLLOW), dir_fd=dir_fd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"not a regular file ({file_kind(st.st_mode)})", str(path))
    return fd, st


def read_regular(path: Path | str, limit: int, *, follow: bool = True, dir_fd: int | None = None) -> tuple[bytes, os.stat_result]:
    """At most ``limit`` + 1 bytes of a regular file (so a caller sees it is over) and its ``fstat``.

    Checked on the descriptor, so ``/dev/zero``, a directory or a socket is an
    ``OSError`` ("not a regular file (a device)") and a 3 GB sparse file costs
    ``limit`` bytes. ``follow=False`` refuses a symlink (``ELOOP``); ``dir_fd``
    reads ``path`` relative to an open directory.

    The first read asks for the size ``fstat`` gave, plus one byte (a file that grew
    meanwhile reads on): a 1 KiB state file costs one read, and no 1 MiB buffer.
    """
    fd, st = _open_regular(path, follow=follow, dir_fd=dir_fd)
    try:
        size = st.st_size
        if size < limit:
            data = os.read(fd, size + 1)
            if len(data) <= size:  # the whole file in one read, as a state file is (a cold scan reads 10,000)
                return data, st
            chunks = [data]
            remaining = limit + 1 - len(data)
            ask = 1 << 20
        else:
            chunks = []
            remaining = limit + 1
            ask = size + 1
        while remaining > 0:
            want = min(remaining, ask)
            chunk = os.read(fd, want)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
            if len(chunk) < want:
                break  # a regular file reads short only at its end: no read more to see it
            ask = 1 << 20
        return chunks[0] if len(chunks) == 1 else b"".join(chunks), st
    finally:
        os.close(fd)


def read_tail(path: Path | str, limit: int) -> tuple[bytes, int]:
    """The last ``limit`` bytes of a regular file and its whole size (a log's tail)."""
    fd, st = _open_regular(path)
    try:
        return os.pread(fd, limit, max(0, st.st_size - limit)), st.st_size
    finally:
        os.close(fd)


__all__ = [
    "UnsafeSidecarError",
    "file_kind",
    "open_sidecar_file",
    "read_regular",
    "read_tail",
    "sidecar_dir",
    "sidecar_dir_fd",
]
