"""The results spool: every finished run reaches the disk before the worker takes the next one.

The coordinator writes the state file coalesced (a few times a second), so a
SIGKILL of the coordinator, or of a worker before its batch was sent, used to
lose every run finished since the last write: a resume ran them again. Each
worker therefore appends each result, as the line it sends, to a spool file
of its own (``.expwatch/spool/<key>/``), which the coordinator opened and
handed over as a file descriptor. A coordinator that adopts the experiment
replays the completed results the state file does not have yet, so only the
runs that were in flight at the kill run again. Spool files go once their
results are in the state file.

Workers append through a shared mapping of the file (``spool_appender``): a
file whose worker was killed ends in NUL padding, which the replay passes over.

Each file starts with a header naming the experiment and its creation time,
so the spool of a deleted experiment is never replayed into a new one that
took its id.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from state.detect import MAX_STATE_FILE_BYTES
from state.native import ExperimentDoc

MAX_SPOOL_FILE_BYTES = 2 * MAX_STATE_FILE_BYTES
"""A spool file holds at most what the state file would (its runs' results), with room for repeats."""


def spool_dir(sidecar_dir: Path, key: str) -> Path:
    return sidecar_dir / "spool" / key


def _identity(doc: ExperimentDoc) -> dict[str, Any]:
    created = doc.created_at.isoformat() if doc.created_at is not None else None
    return {"spool": 1, "experiment_id": doc.experiment_id, "created_at": created}


def open_spool(folder: Path, doc: ExperimentDoc, process_index: int) -> tuple[int, Path]:
    """A new spool file for one worker of this attempt, its header written: the descriptor to hand over."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    while True:
        path = folder / f"a{doc.attempt}-p{process_index}-{n}.jsonl"
        try:
            # Readable too: the worker appends through a shared mapping (``spool_appender``).
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            break
        except FileExistsError:
            n += 1
    try:
        header = {**_identity(doc), "attempt": doc.attempt, "process_index": process_index}
        os.write(fd, json.dumps(header, ensure_ascii=True).encode() + b"\n")
    except BaseException:
        os.close(fd)
        raise
    return fd, path


@dataclass(frozen=True)
class SpooledResult:
    """A completed run as its worker reported it (``protocol``'s RESULT) and who ran it."""

    result: dict[str, Any]
    process_index: int
    attempt: int


@dataclass
class Replay:
    """The completed results found in the spool, and the files they came from."""

    results: list[SpooledResult] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Files passed over, with why (another experiment's, unreadable, too big)."""


def read_spool(folder: Path, doc: ExperimentDoc, *, only: Path | None = None) -> Replay:
    """Every completed result in ``folder``'s spool files (or just ``only``) that belongs to ``doc``."""
    replay = Replay()
    if only is not None:
        names = [only.name]
    else:
        try:
            names = sorted(os.listdir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return replay
    want = _identity(doc)
    for name in names:
        if not name.endswith(".jsonl"):
            continue
        path = folder / name
        try:
            lines = list(_lines(path))
        except OSError as exc:
            replay.skipped.append(f"{name}: {exc.strerror or exc}")
            continue
        header = _decode(lines[0]) if lines else None
        if not isinstance(header, dict) or {k: header.get(k) for k in want} != want:
            replay.skipped.append(f"{name}: not this experiment's")
            continue
        process_index, attempt = header.get("process_index"), header.get("attempt")
        if not isinstance(process_index, int) or not isinstance(attempt, int):
            replay.skipped.append(f"{name}: no process index or attempt in its header")
            continue
        replay.files.append(path)
        for line in lines[1:]:
            result = _decode(line)
            if isinstance(result, dict) and result.get("s") == "completed":
                replay.results.append(SpooledResult(result, process_index, attempt))
    return replay


def _lines(path: Path) -> Iterator[bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(0, "not a regular file")
        if st.st_size > MAX_SPOOL_FILE_BYTES:
            raise OSError(0, f"larger than {MAX_SPOOL_FILE_BYTES // 2**20} MiB")
        with os.fdopen(os.dup(fd), "rb") as handle:
            yield from handle
    finally:
        os.close(fd)


def _decode(line: bytes) -> Any:
    """A line's JSON value; None for a torn or foreign one (a kill mid-write leaves a torn last line).

    A killed worker's file ends in NUL bytes, the rest of the window its appender
    had reserved: not a line either.
    """
    if line[:1] == b"\0":
        return None
    try:
        return json.loads(line, parse_constant=_no_constant)
    except ValueError:
        return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def discard(files: list[Path]) -> None:
    """Remove spool files whose results are in the state file now."""
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def discard_all(folder: Path) -> None:
    """A new experiment under an old key: whatever spool the old one left is not ours."""
    shutil.rmtree(folder, ignore_errors=True)
