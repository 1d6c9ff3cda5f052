"""Launching detached processes: the resumed runner, and llenergymeasure's resume command.

A launched process gets its own session (a terminal hang-up or Ctrl-C in the
launching shell does not reach it), stdin from /dev/null and its output
appended to a log file in the state directory. A reaper thread waits for it,
so a long-lived launcher (the dashboard) collects no zombies.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from runtime.runner.args import ResumeArgs
from state.paths import SIDECAR_DIR, UnsafePathError
from state.record import StateFormat
from state.sidecar import open_sidecar_file

#: The 6-state files' resume, as the llenergymeasure version that writes them spells it.
DEFAULT_LEM_TEMPLATE = "lem experiment --resume {experiment_id}"
TEMPLATE_ENV = "EXPWATCH_RESUME_TEMPLATE"
#: llenergymeasure 0.7.0 studies: ``llem run`` again on the study's saved config, into the same folder.
DEFAULT_STUDY_TEMPLATE = "llem run {study_dir}/_study-artefacts/study_config.yaml --resume-dir {study_dir}"
STUDY_TEMPLATE_ENV = "EXPWATCH_STUDY_RESUME_TEMPLATE"
#: Who wrote each llenergymeasure format, and so whose command resumes it by default.
FORMAT_WRITERS = {
    StateFormat.LEM_V1: "files written by llenergymeasure's 6-state StateManager (`lem`)",
    StateFormat.LEM_V2: "files written by llenergymeasure's 3-phase state (`lem`)",
    StateFormat.LEM_STUDY: "studies written by llenergymeasure 0.7.0 (`llem`)",
}
TEMPLATE_FIELDS = ("experiment_id", "state_dir", "config_path", "study_dir")

#: Environment variables a resumed runner must see again.
CARRIED_ENV = ("PYTHONPATH", "EXPWATCH_SIMULATE_GPUS", "CUDA_VISIBLE_DEVICES")


class LaunchError(Exception):
    """The command cannot be launched; the message says why in one line."""


def project_root() -> Path:
    """The folder holding the ``runtime`` package (put on PYTHONPATH for child interpreters)."""
    return Path(__file__).resolve().parents[1]


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child Python that must import our packages."""
    env = dict(os.environ)
    if extra:
        env.update(extra)
    root = str(project_root())
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        paths.append(root)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def runner_argv(
    experiment_id: str,
    state_dir: Path,
    *,
    gpus: Sequence[int] = (),
    fail_fast: bool = False,
    grace_s: float | None = None,
    workcell: Path | None = None,
    python: str | None = None,
) -> list[str]:
    """The command that resumes an expwatch experiment (recorded in its ResumeSpec); ``ResumeArgs`` defines it."""
    args = ResumeArgs(experiment_id, Path(state_dir), gpus=tuple(gpus), fail_fast=fail_fast, grace_s=grace_s,
                      workcell=workcell)
    return args.to_argv(python)


def carried_env() -> dict[str, str]:
    return {k: os.environ[k] for k in CARRIED_ENV if k in os.environ}


def resolve_template(template: str | None) -> str:
    return template or os.environ.get(TEMPLATE_ENV) or DEFAULT_LEM_TEMPLATE


def resolve_study_template(template: str | None) -> str:
    return template or os.environ.get(STUDY_TEMPLATE_ENV) or DEFAULT_STUDY_TEMPLATE


def expand_template(template: str, **fields: str) -> list[str]:
    """Split the template like a shell would, then fill each word (values never re-split)."""
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise LaunchError(f"resume template {template!r} does not parse: {exc}") from None
    if not words:
        raise LaunchError("resume template is empty")
    values = {name: fields.get(name) or "" for name in TEMPLATE_FIELDS}
    try:
        return [word.format(**values) for word in words]
    except (KeyError, IndexError) as exc:
        known = ", ".join("{" + n + "}" for n in TEMPLATE_FIELDS)
        raise LaunchError(f"resume template {template!r} uses unknown field {exc} (known: {known})") from None
    except ValueError as exc:
        raise LaunchError(f"resume template {template!r} is malformed: {exc}") from None


def find_executable(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> str:
    """The full path of ``argv[0]``, or ``LaunchError`` saying it is not there."""
    program = argv[0]
    path = (env or os.environ).get("PATH")
    found = shutil.which(program, path=path)
    if found is None:
        where = "" if os.sep in program else " on PATH"
        raise LaunchError(f"{program}: command not found{where}")
    interpreter = _missing_interpreter(found)
    if interpreter is not None:
        raise LaunchError(f"{program}: its interpreter {interpreter} is not there (the script's #! line)")
    return found


def _missing_interpreter(path: str) -> str | None:
    """The ``#!`` interpreter of script ``path`` when no executable file is there (the exec would
    fail with "No such file or directory", naming the script); None otherwise or when unreadable."""
    try:
        with open(path, "rb") as script:
            head = script.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    if not words:
        return None
    interpreter = os.fsdecode(words[0])
    return None if os.path.isfile(interpreter) and os.access(interpreter, os.X_OK) else interpreter


def reap_in_background(proc: subprocess.Popen[bytes]) -> None:
    """Whoever starts a process reaps it: a thread waits, so an exited child never lingers as a zombie
    (which the stale verdict would rightly call dead, for an experiment that finished)."""
    threading.Thread(target=proc.wait, name=f"expwatch-reap-{proc.pid}", daemon=True).start()


def open_log(log_path: Path, header: str) -> int:
    """Open an experiment's log for appending and write the header line; the caller closes it.

    A log in a state directory's own log folder is opened through descriptors of
    the folders, each checked (``open_sidecar_file``), so a folder swapped for a
    symlink after the plan was shown cannot send the output elsewhere. Never
    through a symlink, never into a device, a FIFO or a file linked from elsewhere.
    """
    folder = log_path.parent
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    if folder.name == "logs" and folder.parent.name == SIDECAR_DIR:
        try:
            fd = open_sidecar_file(folder.parent.parent, ("logs",), log_path.name, flags)
        except (UnsafePathError, OSError) as exc:
            raise LaunchError(f"cannot log to {log_path}: {exc}") from None
    else:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        os.close(fd)
        raise LaunchError(f"refusing to log to {log_path}: not a plain file of its own")
    os.set_blocking(fd, True)
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    os.write(fd, f"\n== {stamp} {header}\n".encode())
    return fd


def launch_detached(
    argv: Sequence[str],
    *,
    cwd: Path,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    header: str = "launch",
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session with its output appended to ``log_path``."""
    fd = open_log(log_path, f"{header}: {shlex.join(argv)} (in {cwd})")
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise LaunchError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    reap_in_background(proc)
    return proc


def log_path_for(logs_dir: Path, key: str) -> Path:
    """The one log file of an experiment (every attempt appends to it)."""
    return logs_dir / f"{key}.log"
