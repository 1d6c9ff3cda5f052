"""A study's failure files (``failed-runs/<hash>_cycle<N>_traceback.txt``), read for the inspector and ``show``.

The manifest names each file in an entry's ``log_file``; that name is data,
so it is read only if it stays inside the study folder once symlinks are
resolved, is a regular file (never a FIFO or a device: opened non-blocking,
checked with ``fstat``), and only up to a size limit.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from state.lem_study import StudyManifest, log_file_reason
from state.paths import UnsafePathError, ensure_inside

TRACEBACK_LIMIT = 16 * 1024
"""Bytes of one traceback shown (its end is the part that names the error: the tail is kept)."""
MAX_TRACEBACKS = 20


@dataclass(frozen=True, slots=True)
class EntryTraceback:
    """The traceback file of one failed entry: its text, or why it could not be read."""

    index: int
    log_file: str
    text: str | None = None
    reason: str | None = None


def read_study_text(study_dir: Path, relative: str, limit: int = TRACEBACK_LIMIT) -> str:
    """The last ``limit`` bytes of a file the manifest names, as text; ``OSError``/``ValueError`` say why not."""
    reason = log_file_reason(relative)
    if reason:
        raise ValueError(reason)
    path = study_dir / relative
    try:
        ensure_inside(study_dir, path)
    except UnsafePathError:
        raise ValueError(f"{relative} leads outside the study folder") from None
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{relative} is not a regular file")
        skipped = max(0, st.st_size - limit)
        if skipped:
            os.lseek(fd, skipped, os.SEEK_SET)
        data = os.read(fd, limit)
    finally:
        os.close(fd)
    text = data.decode("utf-8", errors="replace")
    return f"[… first {skipped} bytes not shown]\n{text}" if skipped else text


def study_tracebacks(study_dir: Path, model: StudyManifest) -> tuple[EntryTraceback, ...]:
    """The failed entries' traceback files (the first ``MAX_TRACEBACKS``), each read or with its reason."""
    found = []
    for index, entry in enumerate(model.experiments):
        if entry.status != "failed" or not entry.log_file:
            continue
        if len(found) == MAX_TRACEBACKS:
            break
        try:
            found.append(EntryTraceback(index, entry.log_file, text=read_study_text(study_dir, entry.log_file)))
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            found.append(EntryTraceback(index, entry.log_file, reason=why))
    return tuple(found)
