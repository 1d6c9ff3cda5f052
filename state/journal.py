"""The audit journal: one JSON line per action expwatch takes.

Foreign formats cannot hold extra fields, so every mark-stale, resume and
retry is recorded here, whatever the experiment's format.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path


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


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): fall back to the uid
        return str(os.getuid())


class AuditJournal:
    def __init__(self, path: Path):
        self.path = path

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
            host=socket.gethostname(),
            experiment=experiment,
            action=action,
            from_status=from_status,
            to_status=to_status,
            reason=reason,
        )
        line = (json.dumps(asdict(entry), ensure_ascii=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def entries(self, experiment: str | None = None) -> Iterator[JournalEntry]:
        """Entries in order; lines that do not parse (a torn tail) are passed over."""
        try:
            handle = self.path.open("r", encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        with handle:
            for line in handle:
                try:
                    raw = json.loads(line)
                    entry = JournalEntry(**raw)
                except (ValueError, TypeError):
                    continue
                if experiment is None or entry.experiment == experiment:
                    yield entry
