"""The audit journal: one JSON line per action expwatch takes.

Foreign formats cannot hold extra fields, so every mark-stale, resume and
retry is recorded here, whatever the experiment's format.
"""

from __future__ import annotations

import errno
import getpass
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from state.sidecar import UnsafeSidecarError, open_sidecar_file


@dataclass(frozen=True, slots=True)
class JournalEntry:
    time: str
    user: str
    host: str
    experiment: str
    action: str
    from_status: str | None
    to_status: str | None
    reason: str | None

    def to_json_dict(self) -> dict[str, str | None]:
        """The line's fields, named as the design names them (``from``, ``to``)."""
        return {
            "time": self.time,
            "user": self.user,
            "host": self.host,
            "experiment": self.experiment,
            "action": self.action,
            "from": self.from_status,
            "to": self.to_status,
            "reason": self.reason,
        }

    @classmethod
    def from_json_dict(cls, raw: dict[str, str | None]) -> JournalEntry:
        if not isinstance(raw, dict):
            raise TypeError("journal line is not an object")
        texts = [raw["time"], raw["user"], raw["host"], raw["experiment"], raw["action"]]
        optional = [raw.get("from", raw.get("from_status")), raw.get("to", raw.get("to_status")), raw.get("reason")]
        if not all(isinstance(v, str) for v in texts) or not all(v is None or isinstance(v, str) for v in optional):
            raise TypeError("journal line has a field of the wrong type")
        return cls(
            time=raw["time"],
            user=raw["user"],
            host=raw["host"],
            experiment=raw["experiment"],
            action=raw["action"],
            from_status=raw.get("from", raw.get("from_status")),
            to_status=raw.get("to", raw.get("to_status")),
            reason=raw.get("reason"),
        )


def journal_id(model: Any, path: Path) -> str:
    """The id an experiment's journal lines carry: its row's id. A study's is its folder's name (the
    study's own name is shared by every run of the study); any other file's is its experiment id."""
    from state.lem_study import StudyManifest

    if isinstance(model, StudyManifest):
        return Path(os.path.abspath(path)).parent.name
    return str(model.experiment_id)


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): fall back to the uid
        return str(os.getuid())


#: The journal's tail read for history: older lines beyond this are left out (years of actions).
MAX_JOURNAL_READ_BYTES = 16 * 1024 * 1024


class AuditJournal:
    """Append-only JSON lines beside the experiments (in the sidecar folder).

    With ``root`` (the state directory) the file is opened through
    ``state.sidecar``: the sidecar folder must be a real directory and the
    journal a regular file with one link, never a symlink, or nothing is
    written or read.
    """

    def __init__(self, path: Path, *, root: Path | None = None):
        self.path = path
        self.root = root

    def _open(self, flags: int) -> int:
        if self.root is not None:
            return open_sidecar_file(self.root, (), self.path.name, flags)
        fd = os.open(self.path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafeSidecarError(f"refusing to use {self.path}: not a regular file")
        return fd

    def open(self) -> JournalAppender:
        """Open for appending now, so that an action learns before it acts whether it can journal.

        ``OSError`` (a directory in the way, an immutable or read-only file, a
        folder we may not write, a symlink) comes from here, before anything was
        done. A journal that does not exist yet is created by the first append
        only, so an action refused later leaves no empty file behind.
        """
        try:
            return JournalAppender(self, self._open(os.O_RDWR | os.O_APPEND))
        except FileNotFoundError:
            if not os.access(self.path.parent, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self.path.parent)) from None
            return JournalAppender(self, -1)

    def append(self, **fields: str | None) -> JournalEntry:
        """Open, append one line (``JournalAppender.append``'s fields), close."""
        with self.open() as appender:
            return appender.append(**fields)  # type: ignore[arg-type]

    def entries(self, experiment: str | None = None) -> Iterator[JournalEntry]:
        """Entries in order; lines that do not parse or hold wrong types are passed over.

        Only the last ``MAX_JOURNAL_READ_BYTES`` are read. A journal that is a
        symlink, a device or a folder raises ``UnsafeSidecarError``.
        """
        try:
            fd = self._open(os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            size = os.fstat(fd).st_size
            start = max(0, size - MAX_JOURNAL_READ_BYTES)
            data = os.pread(fd, MAX_JOURNAL_READ_BYTES, start)
        finally:
            os.close(fd)
        if start:
            data = data.partition(b"\n")[2]  # the first line is cut
        for line in data.decode("utf-8", errors="replace").splitlines():
            try:
                entry = JournalEntry.from_json_dict(json.loads(line))
            except (ValueError, TypeError, KeyError, RecursionError):
                continue
            if experiment is None or entry.experiment == experiment:
                yield entry


class JournalAppender:
    """The journal held open by one action: opened before it acts, written once it has."""

    def __init__(self, journal: AuditJournal, fd: int):
        self.journal = journal
        self.path = journal.path
        self._fd = fd

    def __enter__(self) -> JournalAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def append(
        self,
        *,
        experiment: str,
        action: str,
        from_status: str | None,
        to_status: str | None,
        reason: str | None,
    ) -> JournalEntry:
        entry = JournalEntry(
            time=datetime.now().astimezone().isoformat(timespec="seconds"),
            user=current_user(),
            host=os.uname().nodename,  # what socket.gethostname() returns, without loading socket (4 ms)
            experiment=experiment,
            action=action,
            from_status=from_status,
            to_status=to_status,
            reason=reason,
        )
        if self._fd < 0:
            self._fd = self.journal._open(os.O_RDWR | os.O_APPEND | os.O_CREAT)
        text = json.dumps(entry.to_json_dict(), ensure_ascii=False) + "\n"
        line = text.encode("utf-8", "backslashreplace")
        size = os.fstat(self._fd).st_size
        if size and os.pread(self._fd, 1, size - 1) != b"\n":
            # A torn last line (a crash mid-append): end it, or it would swallow this one.
            line = b"\n" + line
        os.write(self._fd, line)
        os.fsync(self._fd)
        return entry
