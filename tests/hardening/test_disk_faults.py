"""Saves that fail half-way (disk full, I/O error) leave the old file byte for byte, and say why.

A real 64 KiB tmpfs gives a real ENOSPC; EIO cannot be produced on demand
without a faulty device, so it (and ENOSPC, where mounting is refused) is
injected at the system calls ``state.atomic`` makes.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from tests.hardening.helpers import interrupt, tmpfs, tree_state, write_lem

import state.atomic
from state import StateStore
from state.lem import LemExperimentState
from state.native import ExperimentDoc, RunRecord


def _watched(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name != ".expwatch")


def _temp_leftovers(root: Path) -> list[str]:
    tmp = root / ".expwatch" / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def test_disk_full_on_a_real_tmpfs_keeps_the_old_file(tmp_path: Path) -> None:
    mount_point = tmp_path / "small"
    try:
        ctx = tmpfs(mount_point, size="64k")
        root = ctx.__enter__()
    except PermissionError as exc:
        pytest.skip(f"{exc}; the injected ENOSPC tests below cover this case")
    try:
        original = write_lem(root, "exp-full", status="running")
        before = original.read_bytes()
        store = StateStore(root)
        store.scan()
        loaded = store.load("exp-full")
        # Fill the filesystem to the last byte.
        fd = os.open(root / "filler.bin", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            with pytest.raises(OSError) as full:
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
        assert full.value.errno == errno.ENOSPC
        bigger = loaded.model.model_copy(update={"model_name": "x" * 20_000})
        with pytest.raises(OSError) as exc:
            store.save(bigger, expected=loaded.version)
        assert exc.value.errno == errno.ENOSPC
        assert "No space left on device" in str(exc.value)
        assert original.read_bytes() == before
        assert _watched(root) == ["exp-full.json", "filler.bin"]
        assert _temp_leftovers(root) == []
        # After space is freed, the same save succeeds.
        (root / "filler.bin").unlink()
        store.save(bigger, expected=loaded.version)
        assert LemExperimentState.model_validate_json(original.read_bytes()).model_name == "x" * 20_000
    finally:
        ctx.__exit__(None, None, None)


def _failing_writev(monkeypatch: pytest.MonkeyPatch, code: int, allow: int) -> None:
    """The temp file's ``writev`` writes ``allow`` bytes, then fails with ``code``."""

    def writev(fd: int, buffers: list[memoryview]) -> int:
        if allow:
            os.write(fd, bytes(buffers[0][:allow]))
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(state.atomic.os, "writev", writev)


def _populated(state_dir: Path) -> tuple[StateStore, Path, bytes]:
    path = write_lem(state_dir, "exp-1", status="running")
    store = StateStore(state_dir)
    store.scan()
    return store, path, path.read_bytes()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
@pytest.mark.parametrize("allow", [0, 100])
def test_write_error_during_save_keeps_the_old_file(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch, code: int, allow: int
) -> None:
    store, path, before = _populated(state_dir)
    loaded = store.load("exp-1")
    _failing_writev(monkeypatch, code, allow)
    with pytest.raises(OSError) as exc:
        store.save(loaded.model.model_copy(update={"model_name": "new"}), expected=loaded.version)
    monkeypatch.undo()
    assert exc.value.errno == code
    assert os.strerror(code) in str(exc.value)
    assert path.read_bytes() == before
    assert _watched(state_dir) == ["exp-1.json"]
    assert _temp_leftovers(state_dir) == []
    # The store still works afterwards.
    store.save(loaded.model.model_copy(update={"model_name": "new"}), expected=loaded.version)
    assert LemExperimentState.model_validate_json(path.read_bytes()).model_name == "new"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_fsync_error_during_save_keeps_the_old_file(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """ext4 reports delayed-allocation ENOSPC and device EIO at fsync: the rename must not happen."""
    store, path, before = _populated(state_dir)

    def failing_fsync(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(state.atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError) as exc:
        interrupt(store, "exp-1")
    monkeypatch.undo()
    assert exc.value.errno == code
    assert path.read_bytes() == before
    assert _watched(state_dir) == ["exp-1.json"]
    assert _temp_leftovers(state_dir) == []
    assert list(store.journal.entries()) == []


def test_failed_create_leaves_no_file_at_all(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = StateStore(state_dir)
    runs = [RunRecord(id_run=f"r{i}", index=i) for i in range(10)]
    doc = ExperimentDoc(experiment_id="fresh", runs=runs, last_updated="2025-03-01T12:00:00+00:00")
    _failing_writev(monkeypatch, errno.ENOSPC, 10)
    with pytest.raises(OSError):
        store.create(doc)
    monkeypatch.undo()
    assert _watched(state_dir) == []
    assert _temp_leftovers(state_dir) == []
    assert not store.scan()


def test_failed_save_is_invisible_to_a_scanner(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader scanning around the failure sees the old experiment unchanged, no broken row."""
    store, path, before = _populated(state_dir)
    watcher = StateStore(state_dir, read_only=True)
    watcher.scan()
    snapshot = tree_state(state_dir)
    loaded = store.load("exp-1")
    _failing_writev(monkeypatch, errno.EIO, 50)
    with pytest.raises(OSError):
        store.save(loaded.model.model_copy(update={"model_name": "new"}))
    monkeypatch.undo()
    assert not watcher.scan()
    assert watcher.entries["exp-1"].model_name == "m"
    after = tree_state(state_dir)
    assert {k: v for k, v in after.items() if not k.startswith(".expwatch")} == {
        k: v for k, v in snapshot.items() if not k.startswith(".expwatch")
    }
