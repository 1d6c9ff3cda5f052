"""The worker's spool appender: lines in the file at once, across windows, and a killed worker's padding skipped."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from runtime.runner import spool_appender
from runtime.runner.spool import open_spool, read_spool
from runtime.runner.spool_appender import SpoolAppender
from state.native import ExperimentDoc

NOW = datetime(2026, 1, 2, 3, 4).astimezone()
DOC = ExperimentDoc(experiment_id="spooled", created_at=NOW, last_updated=NOW)


def line(i: int) -> bytes:
    return json.dumps({"i": i, "r": f"{i:04d}", "s": "completed", "f": {"x": "y" * (i % 50)},
                       "t0": 1.0, "t1": 2.0}).encode() + b"\n"


def test_lines_are_readable_at_once_across_windows_and_a_killed_worker_s_padding_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_appender, "WINDOW", 4096)
    fd, path = open_spool(tmp_path, DOC, 0)
    header = path.read_bytes()
    appender = SpoolAppender(fd)
    lines = [line(i) for i in range(300)]  # about 20 KB: several windows
    for data in lines:
        appender.append(data)
    # As a SIGKILL leaves it: never closed, the last window's rest is NUL bytes.
    on_disk = path.read_bytes()
    assert on_disk.startswith(header + b"".join(lines)) and on_disk.endswith(b"\0")
    assert [r.result["i"] for r in read_spool(tmp_path, DOC).results] == list(range(300))
    appender.close()
    assert path.read_bytes() == header + b"".join(lines)
    os.close(fd)


def test_a_torn_line_before_the_padding_is_passed_over(tmp_path: Path) -> None:
    fd, path = open_spool(tmp_path, DOC, 1)
    appender = SpoolAppender(fd)
    appender.append(line(1))
    appender.append(line(2)[:20])  # as a kill in the middle of a copy leaves it
    assert [r.result["i"] for r in read_spool(tmp_path, DOC).results] == [1]
    appender.close()
    os.close(fd)


@pytest.mark.parametrize("refused", ["fallocate", "mmap"])
def test_a_file_system_that_cannot_reserve_or_map_gets_plain_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: str
) -> None:
    """Some network and FUSE file systems refuse posix_fallocate or a shared mapping: every line still
    goes in at once, whole, and the spool is not given up (a full disk still is an error)."""
    import errno

    def refuse(*args, **kwargs):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    if refused == "fallocate":
        monkeypatch.setattr(spool_appender.os, "posix_fallocate", refuse)
    else:
        monkeypatch.setattr(spool_appender.mmap, "mmap", refuse)
    fd, path = open_spool(tmp_path, DOC, 2)
    header = path.read_bytes()
    appender = SpoolAppender(fd)
    lines = [line(i) for i in range(50)]
    for data in lines:
        appender.append(data)
    assert not appender.mapped
    assert path.read_bytes() == header + b"".join(lines), "on disk at once, no padding"
    assert [r.result["i"] for r in read_spool(tmp_path, DOC).results] == list(range(50))
    appender.close()
    os.close(fd)


def test_a_full_disk_is_still_an_error_not_a_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool_appender.os, "posix_fallocate", full)
    fd, _ = open_spool(tmp_path, DOC, 3)
    appender = SpoolAppender(fd)
    with pytest.raises(OSError, match="No space"):
        appender.append(line(1))
    assert appender.mapped
    os.close(fd)
