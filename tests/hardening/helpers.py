"""Helpers for the hardening tests: state files written as their tools write them, tree snapshots."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXPWATCH = ROOT / ".venv" / "bin" / "expwatch"


def lem_v1_text(experiment_id: str, *, status: str = "completed", model_name: str = "m", **extra: Any) -> str:
    """An llenergymeasure v1 file's text, built from a plain dict (not from our models)."""
    when = datetime(2025, 3, 1, 12, 0, 0)
    raw: dict[str, Any] = {
        "experiment_id": experiment_id,
        "status": status,
        "cycle_id": 0,
        "config_path": None,
        "config_hash": None,
        "model_name": model_name,
        "prompt_args": {},
        "num_processes": 1,
        "subprocess_pid": None,
        "process_progress": {},
        "started_at": (when - timedelta(hours=1)).isoformat(),
        "last_updated": when.isoformat(),
        "error_message": None,
        "completed_runs": {},
        "failed_runs": {},
        "total_runs": 0,
    }
    raw.update(extra)
    return json.dumps(raw, indent=2)


def write_lem(directory: Path, experiment_id: str, **fields: Any) -> Path:
    path = directory / f"{experiment_id}.json"
    path.write_text(lem_v1_text(experiment_id, **fields))
    return path


def tree_state(root: Path) -> dict[str, tuple[bytes | None, int, int]]:
    """Every path under ``root`` with its bytes (files), mode and mtime: to prove nothing changed."""
    out: dict[str, tuple[bytes | None, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            data = path.read_bytes() if path.is_file() and not path.is_symlink() else None
            out[str(path.relative_to(root))] = (data, st.st_mode, st.st_mtime_ns)
    return out


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60.0,
            shell_suffix: str = "") -> subprocess.CompletedProcess[str]:
    """Run the installed ``expwatch`` script; ``shell_suffix`` adds shell redirections (``0<&-``)."""
    full_env = dict(os.environ)
    full_env.pop("EXPWATCH_STATE_DIR", None)
    full_env.update(env or {})
    if shell_suffix:
        quoted = " ".join(_quote(a) for a in (str(EXPWATCH), *args))
        return subprocess.run(
            ["/bin/sh", "-c", f"{quoted} {shell_suffix}"],
            capture_output=True, text=True, env=full_env, timeout=timeout,
        )
    return subprocess.run(
        [str(EXPWATCH), *args], capture_output=True, text=True, env=full_env, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def in_child_as(uid: int, body: Callable[[], Any], *, timeout: float = 30.0) -> Any:
    """Run ``body`` in a forked child that dropped to ``uid``; return its JSON-able result.

    Raises ``PermissionError`` when the child may not change user (then the
    caller skips). Anything ``body`` raises comes back as ``RuntimeError``.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_end)
            try:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            except PermissionError as exc:
                payload = {"setuid_refused": str(exc)}
            else:
                try:
                    payload = {"result": body()}
                except BaseException as exc:  # reported to the parent
                    payload = {"error": f"{type(exc).__name__}: {exc}"}
            os.write(write_end, json.dumps(payload, default=str).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    with contextlib.closing(os.fdopen(read_end, "rb")) as reader:
        chunks.append(reader.read())
    _, status = os.waitpid(pid, 0)
    payload = json.loads(b"".join(chunks) or b"{}")
    if "setuid_refused" in payload:
        raise PermissionError(payload["setuid_refused"])
    if "error" in payload:
        raise RuntimeError(payload["error"])
    if "result" not in payload:
        raise RuntimeError(f"child exited with status {status} and no result")
    return payload["result"]


@contextlib.contextmanager
def tmpfs(directory: Path, *, size: str = "64k", options: str = "") -> Iterator[Path]:
    """A small tmpfs mounted on ``directory``; raises ``PermissionError`` if mounting is refused."""
    directory.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (f",{options}" if options else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(directory)],
                          capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise PermissionError(f"mount -t tmpfs not permitted here: {done.stderr.strip() or done.returncode}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, timeout=20)


def remount(directory: Path, options: str) -> None:
    done = subprocess.run(["mount", "-o", f"remount,{options}", str(directory)],
                          capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise PermissionError(f"remount {options} refused: {done.stderr.strip()}")


PYTHON = sys.executable


def interrupt(store: Any, ident: str) -> Any:
    """A validated write through the store (running -> interrupted), as an action makes one."""
    from state.mutations import apply_transition
    from state.transitions import ExperimentStatus

    return store.update(ident, lambda model: apply_transition(model, ExperimentStatus.INTERRUPTED, who="test", why="test"))
