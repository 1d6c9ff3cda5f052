"""Helpers for the state-layer tests: files written the way their tools write them.

The llenergymeasure helpers build the JSON text independently of our models
(plain dicts in llenergymeasure's field order, ``json.dumps(indent=2)``), so a
round trip through ``state`` is compared against text that ``state`` did not
produce.
"""

from __future__ import annotations

import json
import os
import re
import signal
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

#: llenergymeasure v1 ``ExperimentState`` fields, in declaration order.
LEM_V1_FIELDS = (
    "experiment_id",
    "status",
    "cycle_id",
    "config_path",
    "config_hash",
    "model_name",
    "prompt_args",
    "num_processes",
    "subprocess_pid",
    "process_progress",
    "started_at",
    "last_updated",
    "error_message",
    "completed_runs",
    "failed_runs",
    "total_runs",
)
LEM_PROCESS_FIELDS = ("process_index", "status", "gpu_id", "started_at", "completed_at", "error_message")
#: llenergymeasure v2 ``ExperimentState`` fields, in declaration order.
LEM_V2_FIELDS = (
    "experiment_id",
    "phase",
    "failed",
    "config_hash",
    "error_message",
    "started_at",
    "last_updated",
    "subprocess_pid",
)
#: How llenergymeasure's pydantic writes a naive datetime: no offset, fraction only when nonzero.
NAIVE_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?$")


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def lem_process(index: int, status: str = "pending", **fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "process_index": index,
        "status": status,
        "gpu_id": None,
        "started_at": None,
        "completed_at": None,
        "error_message": None,
    }
    for key, value in fields.items():
        assert key in LEM_PROCESS_FIELDS, key
        raw[key] = iso(value) if isinstance(value, datetime) else value
    return raw


def lem_v1(experiment_id: str = "exp-1", **fields: Any) -> dict[str, Any]:
    """A v1 state dict with llenergymeasure's defaults, in its field order."""
    raw: dict[str, Any] = {
        "experiment_id": experiment_id,
        "status": "initialised",
        "cycle_id": 0,
        "config_path": None,
        "config_hash": None,
        "model_name": None,
        "prompt_args": {},
        "num_processes": 1,
        "subprocess_pid": None,
        "process_progress": {},
        "started_at": None,
        "last_updated": "2025-03-14T09:26:53.589793",
        "error_message": None,
        "completed_runs": {},
        "failed_runs": {},
        "total_runs": 0,
    }
    for key, value in fields.items():
        assert key in LEM_V1_FIELDS, key
        raw[key] = iso(value) if isinstance(value, datetime) else value
    return raw


def lem_v2(experiment_id: str = "exp-2", **fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "experiment_id": experiment_id,
        "phase": "initialising",
        "failed": False,
        "config_hash": None,
        "error_message": None,
        "started_at": None,
        "last_updated": "2025-03-14T09:26:53",
        "subprocess_pid": None,
    }
    for key, value in fields.items():
        assert key in LEM_V2_FIELDS, key
        raw[key] = iso(value) if isinstance(value, datetime) else value
    return raw


def lem_text(raw: dict[str, Any]) -> str:
    """The text llenergymeasure's ``model_dump_json(indent=2)`` gives for ``raw``."""
    return json.dumps(raw, indent=2, ensure_ascii=False)


def write_text(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def write_lem(directory: Path, raw: dict[str, Any], stem: str | None = None) -> Path:
    return write_text(directory / f"{stem or raw['experiment_id']}.json", lem_text(raw))


def ordered_pairs(text: str) -> Any:
    """JSON decoded with key order kept as lists of pairs, to compare order too."""
    return json.loads(text, object_pairs_hook=list)


def file_state(path: Path) -> tuple[bytes | None, int, int, int]:
    """Bytes, inode, mtime_ns and mode of a file (without following a final symlink)."""
    st = os.lstat(path)
    data = path.read_bytes() if path.is_file() and not path.is_symlink() else None
    return data, st.st_ino, st.st_mtime_ns, st.st_mode


def tree_state(root: Path) -> dict[str, tuple[bytes | None, int, int, int]]:
    """Every entry under ``root`` (hidden ones too), for before/after comparisons."""
    found: dict[str, tuple[bytes | None, int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            found[str(path.relative_to(root))] = file_state(path)
    return found


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block blocks, e.g. on a FIFO."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for more than {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def in_child(body: Callable[[], None], *, uid: int | None = None, gid: int | None = None) -> tuple[int, str]:
    """Run ``body`` in a forked child (optionally as another user); return (exit code, error text)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into the test runner
        code = 0
        try:
            os.close(read_fd)
            if gid is not None:
                os.setgroups([])
                os.setgid(gid)
            if uid is not None:
                os.setuid(uid)
            body()
        except BaseException:
            code = 1
            try:
                os.write(write_fd, traceback.format_exc().encode())
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    with os.fdopen(read_fd, "rb") as pipe:
        chunks.append(pipe.read())
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


def dead_pid() -> int:
    """A PID that belonged to a process of ours that has exited and been reaped."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def transition(store: Any, ident: str, target: Any, *, why: str | None, action: str = "transition") -> tuple[Any, Any]:
    """A validated status change, journalled: the state layer's pieces, as an action composes them."""
    from state.journal import current_user
    from state.mutations import apply_transition

    who = current_user()
    before, saved = store.update(ident, lambda model: apply_transition(model, target, who=who, why=why))
    store.journal_action(before, saved, action=action, reason=why)
    return before, saved
