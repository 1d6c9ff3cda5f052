"""The state directory misbehaving under the store: vanishing, unreadable, read-only, looping, churning."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from state import ExperimentStatus, ReadOnlyStoreError, StateStore
from state.lem import LemExperimentState
from state.record import BrokenRecord, ExperimentRecord
from state.store import BrokenExperimentError
from tests.hardening.helpers import in_child_as, interrupt, lem_v1_text, remount, tmpfs, tree_state, write_lem

NOBODY = 65534


def test_state_dir_removed_and_recreated_between_scans(state_dir: Path) -> None:
    for i in range(3):
        write_lem(state_dir, f"exp-{i}")
    store = StateStore(state_dir, read_only=True)
    assert sorted(store.scan().added) == ["exp-0", "exp-1", "exp-2"]
    shutil.rmtree(state_dir)
    delta = store.scan()
    assert sorted(delta.removed) == ["exp-0", "exp-1", "exp-2"] and not delta.added
    assert store.entries == {}
    state_dir.mkdir()
    write_lem(state_dir, "exp-1")
    write_lem(state_dir, "exp-9")
    delta = store.scan()
    assert sorted(delta.added) == ["exp-1", "exp-9"] and not delta.removed
    assert all(isinstance(e, ExperimentRecord) for e in store.entries.values())


def test_state_dir_replaced_by_a_file_then_restored(state_dir: Path) -> None:
    write_lem(state_dir, "exp-0")
    store = StateStore(state_dir, read_only=True)
    store.scan()
    shutil.rmtree(state_dir)
    state_dir.write_text("not a directory")
    assert store.scan().removed == ("exp-0",)
    state_dir.unlink()
    state_dir.mkdir()
    write_lem(state_dir, "exp-0")
    assert store.scan().added == ("exp-0",)


def test_scans_while_the_directory_is_removed_and_recreated_in_a_loop(state_dir: Path) -> None:
    """Scans racing the removal never raise; once the churn stops, the next scan is exact."""
    texts = {f"exp-{i}": lem_v1_text(f"exp-{i}") for i in range(20)}
    for key, text in texts.items():
        (state_dir / f"{key}.json").write_text(text)
    stop = threading.Event()
    churns = [0]

    def churn() -> None:
        while not stop.is_set():
            shutil.rmtree(state_dir, ignore_errors=True)
            state_dir.mkdir(exist_ok=True)
            for key, text in texts.items():
                (state_dir / f"{key}.json").write_text(text)
            churns[0] += 1

    store = StateStore(state_dir, read_only=True)
    worker = threading.Thread(target=churn, daemon=True)
    worker.start()
    scans = 0
    deadline = time.monotonic() + 10
    try:
        while (churns[0] < 30 or scans < 30) and time.monotonic() < deadline:
            store.scan()
            scans += 1
    finally:
        stop.set()
        worker.join(10)
    assert scans >= 10 and churns[0] >= 5
    store.scan()
    assert sorted(store.entries) == sorted(texts)
    assert all(isinstance(e, ExperimentRecord) for e in store.entries.values()), [
        e.reason for e in store.entries.values() if isinstance(e, BrokenRecord)
    ]


def _traversable_dir() -> Path:
    """A directory another user can reach (pytest's own temp root is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="expwatch-perm-"))
    path.chmod(0o755)
    return path


def test_permission_denied_files_are_broken_rows_for_an_unprivileged_user() -> None:
    root = _traversable_dir()
    try:
        write_lem(root, "readable").chmod(0o644)
        write_lem(root, "secret").chmod(0o600)
        write_lem(root, "no-access").chmod(0o000)

        def body() -> dict[str, str]:
            store = StateStore(root, read_only=True)
            store.scan()
            out = {k: (e.reason if isinstance(e, BrokenRecord) else e.status) for k, e in store.entries.items()}
            try:
                store.load("secret")
            except BrokenExperimentError as exc:
                out["load-secret"] = str(exc)
            return out

        try:
            seen = in_child_as(NOBODY, body)
        except PermissionError as exc:
            pytest.skip(f"cannot drop privileges here ({exc}); as root, mode 000 does not block reads")
        assert seen["readable"] == "completed"
        assert seen["secret"] == "permission denied"
        assert seen["no-access"] == "permission denied"
        assert "Permission denied" in seen["load-secret"]
    finally:
        shutil.rmtree(root)


def test_write_refused_by_permissions_changes_nothing() -> None:
    """A writable store run by a user who may not write there: an error, and nothing changes."""
    root = _traversable_dir()
    try:
        write_lem(root, "exp-1", status="running").chmod(0o644)
        before = tree_state(root)

        def body() -> str:
            store = StateStore(root)
            store.scan()
            try:
                interrupt(store, "exp-1")
            except PermissionError as exc:
                return f"refused: {exc.strerror}"
            return "written"

        try:
            outcome = in_child_as(NOBODY, body)
        except PermissionError as exc:
            pytest.skip(f"cannot drop privileges here ({exc})")
        assert outcome == "refused: Permission denied"
        assert tree_state(root) == before
    finally:
        shutil.rmtree(root)


def test_read_only_mount(tmp_path: Path) -> None:
    """On a read-only filesystem: reads work, a read-only store refuses, a writable one fails cleanly."""
    try:
        ctx = tmpfs(tmp_path / "ro", size="1m")
        root = ctx.__enter__()
    except PermissionError as exc:
        pytest.skip(f"{exc}; tests/state/test_state_read_only.py covers the read-only store itself")
    try:
        write_lem(root, "exp-1", status="running")
        (root / "broken.json").write_text("{")
        try:
            remount(root, "ro")
        except PermissionError as exc:
            pytest.skip(str(exc))
        before = tree_state(root)
        observer = StateStore(root, read_only=True)
        assert sorted(observer.scan().added) == ["broken", "exp-1"]
        assert observer.load("exp-1").model.status is ExperimentStatus.RUNNING
        with pytest.raises(ReadOnlyStoreError):
            interrupt(observer, "exp-1")
        writer = StateStore(root)
        writer.scan()
        with pytest.raises(OSError) as exc:
            interrupt(writer, "exp-1")
        assert "Read-only file system" in str(exc.value)
        assert tree_state(root) == before
    finally:
        ctx.__exit__(None, None, None)


def test_symlink_loops_are_broken_rows_not_hangs(state_dir: Path) -> None:
    write_lem(state_dir, "good")
    os.symlink("self.json", state_dir / "self.json")
    os.symlink("pong.json", state_dir / "ping.json")
    os.symlink("ping.json", state_dir / "pong.json")
    os.symlink(".", state_dir / "dir-loop.json")
    store = StateStore(state_dir, read_only=True)
    store.scan()
    reasons = {k: e.reason for k, e in store.entries.items() if isinstance(e, BrokenRecord)}
    assert reasons == {
        "self": "symlink loop",
        "ping": "symlink loop",
        "pong": "symlink loop",
        "dir-loop": "not a regular file (a directory)",
    }
    assert isinstance(store.entries["good"], ExperimentRecord)
    with pytest.raises(BrokenExperimentError):
        store.load("ping")
    assert not store.refresh({"self.json", "ping.json"})


_WRITER = """
import os, sys, time
target, a, b, seconds = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode(), float(sys.argv[4])
tmp_dir = os.path.join(os.path.dirname(target), ".expwatch")
os.makedirs(tmp_dir, exist_ok=True)
tmp = os.path.join(tmp_dir, "w.tmp")
end = time.monotonic() + seconds
n = 0
period = 0.001
start = time.monotonic()
while time.monotonic() < end:
    with open(tmp, "wb") as f:
        f.write(a if n % 2 else b)
    os.replace(tmp, target)
    n += 1
    pause = start + n * period - time.monotonic()
    if pause > 0:
        time.sleep(pause)
print(n)
"""


def test_file_rewritten_a_thousand_times_a_second_while_scanning(state_dir: Path) -> None:
    """Atomic replaces at up to 1 kHz: every scan sees the old or the new content, never a torn one."""
    a = lem_v1_text("hot", status="running", model_name="model-a")
    b = lem_v1_text("hot", status="completed", model_name="model-b" + "x" * 50)
    target = state_dir / "hot.json"
    target.write_text(a)
    write_lem(state_dir, "cold")
    seconds = 1.5
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(target), a, b, str(seconds)],
        stdout=subprocess.PIPE, text=True,
    )
    store = StateStore(state_dir, read_only=True)
    seen: set[str] = set()
    scans = 0
    try:
        while writer.poll() is None:
            store.scan()
            store.refresh({"hot.json"})
            scans += 1
            entry = store.entries["hot"]
            assert isinstance(entry, ExperimentRecord), entry
            assert (entry.status, entry.model_name) in {("running", "model-a"), ("completed", "model-b" + "x" * 50)}
            seen.add(entry.model_name or "")
            assert isinstance(store.entries["cold"], ExperimentRecord)
            loaded = store.load("hot").model
            assert isinstance(loaded, LemExperimentState)
            assert loaded.model_name in {"model-a", "model-b" + "x" * 50}
    finally:
        out, _ = writer.communicate(timeout=30)
    writes = int(out.strip())
    assert writes > 100, writes
    assert scans > 5
    assert len(seen) == 2, "the scanner never saw both versions"
    store.scan()
    final = b if writes % 2 else a
    assert store.entries["hot"].model_name == LemExperimentState.model_validate_json(final).model_name
