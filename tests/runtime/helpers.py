"""Helpers for runner tests: study files, the CLI as a real process, bounded waits, state reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from runtime.liveness import probe
from state.native import ExperimentDoc, OwnerIdentity, RunStatus
from state.store import StateStore

ROOT = Path(__file__).resolve().parents[2]

MINIMAL_STUDY = '''\
import time

def warm_up(run):
    run.vars.t0 = time.time()

def measure(run):
    run.fields.square = run.params.i ** 2       # attribute access
    run.fields["seconds"] = time.time() - run.vars.t0   # item access works too

steps = [warm_up, measure]
grid = {"i": range(20)}          # one run per combination
config = {"model": "demo"}       # optional
'''

#: A study whose step records every execution (O_APPEND, one line each) and can be told
#: through the environment to sleep, fail at one point, or print.
COUNTING_STUDY = '''\
import json, os, time, uuid
from pathlib import Path

_FILE = Path(__file__).with_name("settings.json")
_SETTINGS = json.loads(_FILE.read_text()) if _FILE.exists() else {}

def setting(name, default=""):
    return os.environ.get(name) or _SETTINGS.get(name) or default

def begin(run):
    run.vars.token = uuid.uuid4().hex
    line = f"{run.id_run} {run.vars.token} {os.getpid()}\\n".encode()
    fd = os.open(setting("EXEC_LOG"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    run.fields.token = run.vars.token
    run.fields.gpu = run.gpu_id
    run.fields.cuda = os.environ.get("CUDA_VISIBLE_DEVICES")

def work(run):
    lo, hi = float(setting("STEP_MIN_S", "0")), float(setting("STEP_MAX_S", "0"))
    if hi > 0:
        time.sleep(lo + (hi - lo) * ((run.index * 7919) % 101) / 100)
    if setting("PRINT"):
        print("printed-by-step", run.id_run)
        print("stderr-by-step", run.id_run, file=__import__("sys").stderr)
    if str(run.params.i) in setting("FAIL_AT").split(","):
        raise ValueError(f"boom at {run.params.i}")
    run.fields.square = run.params.i ** 2

steps = [begin, work]
grid = {"i": range(int(setting("RUNS", "12")))}
config = {"kind": "counting"}
'''


def write_study(folder: Path, text: str = MINIMAL_STUDY, name: str = "study.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("EXPWATCH_STATE_DIR", None)
    env.update({k: str(v) for k, v in extra.items()})
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT) not in paths:
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *paths])
    return env


def cli_argv(*args: str | Path) -> list[str]:
    """The installed entry point's code path (``python -m app.cli`` would load app.cli twice)."""
    return [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())", *map(str, args)]


def expwatch(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
             timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a real process and wait for it."""
    return subprocess.run(
        cli_argv(*args), cwd=cwd, env=env or cli_env(), capture_output=True, text=True, timeout=timeout
    )


def start_expwatch(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_argv(*args), cwd=cwd, env=env or cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition", every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def read_doc(state_dir: Path, key: str) -> ExperimentDoc | None:
    """The experiment as on disk, or None while it does not exist or cannot be read."""
    try:
        loaded = StateStore(state_dir, read_only=True).load(key)
    except Exception:
        return None
    model = loaded.model
    return model if isinstance(model, ExperimentDoc) else None


def status_of(state_dir: Path, key: str) -> str | None:
    doc = read_doc(state_dir, key)
    return doc.status.value if doc else None


def pid_gone(pid: int) -> bool:
    evidence = probe(pid)
    return not evidence.exists or evidence.zombie


def owners_gone(doc: ExperimentDoc) -> bool:
    return all(identity_gone(owner) for owner in doc.owners())


def identity_gone(owner: OwnerIdentity) -> bool:
    evidence = probe(owner.pid)
    if not evidence.exists or evidence.zombie:
        return True
    return owner.start_ticks is not None and evidence.start_ticks != owner.start_ticks


def executions(exec_log: Path) -> Counter[str]:
    """How many times each run began executing (one line per execution)."""
    try:
        lines = exec_log.read_text().splitlines()
    except FileNotFoundError:
        return Counter()
    return Counter(line.split()[0] for line in lines if line.strip())


def completed_fields(doc: ExperimentDoc) -> dict[str, dict[str, Any]]:
    return {r.id_run: dict(r.fields) for r in doc.runs if r.status is RunStatus.COMPLETED}


def journal(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / ".expwatch" / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def terminate_all(owners: Iterable[OwnerIdentity]) -> None:
    """SIGKILL processes a test started that are still the same processes (never a reused PID)."""
    for owner in owners:
        if identity_gone(owner):
            continue
        try:
            os.kill(owner.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass


# -- fabricated experiments ------------------------------------------------------
def unused_pid() -> int:
    """A PID no process can have (above the kernel's pid_max)."""
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text()) + 4242
    except OSError:
        return 4_194_304 + 4242


def dead_owner(role: str = "coordinator", process_index: int | None = None) -> OwnerIdentity:
    from runtime.liveness import host_facts

    facts = host_facts()
    return OwnerIdentity(host=facts.host, boot_id=facts.boot_id, pid=unused_pid(), start_time=1.0,
                         start_ticks=1, role=role, process_index=process_index)


def make_native(
    state_dir: Path,
    study: Path,
    experiment_id: str,
    *,
    status: str = "interrupted",
    completed: Iterable[int] = (),
    failed: Iterable[int] = (),
    owner: OwnerIdentity | None = None,
    processes: int = 1,
) -> ExperimentDoc:
    """An expwatch experiment as a runner would have left it, without running anything.

    Completed runs get ``fields = {"square": -1}``: a re-execution would overwrite it.
    """
    from datetime import datetime

    from runtime.runner.options import RunnerOptions
    from runtime.runner.start import create_experiment
    from runtime.runner.study import load_study
    from state.native import ExceptionInfo, HistoryEntry, ProcessInfo
    from state.transitions import ExperimentStatus

    store = StateStore(state_dir)
    key, doc, _ = create_experiment(store, load_study(study), RunnerOptions(processes=processes),
                                    experiment_id=experiment_id)
    done, bad = set(completed), set(failed)
    now = datetime.now().astimezone()
    for rec in doc.runs:
        if rec.index in done:
            rec.status = RunStatus.COMPLETED
            rec.fields = {"square": -1}
            rec.process_index = 0
        elif rec.index in bad:
            rec.status = RunStatus.FAILED
            rec.exception = ExceptionInfo(type="ValueError", message="earlier failure", traceback="...")
            rec.process_index = 0
    target = ExperimentStatus(status)
    doc.owner = owner or dead_owner()
    doc.processes = {
        str(i): ProcessInfo(process_index=i, status="running" if target is ExperimentStatus.RUNNING else "failed",
                            owner=dead_owner("worker", i) if owner is None else None)
        for i in range(processes)
    }
    if target is not ExperimentStatus.INITIALISED:
        doc.history.append(HistoryEntry(at=now, from_status=ExperimentStatus.INITIALISED,
                                        to=ExperimentStatus.RUNNING, who="test", why="started"))
        if target is not ExperimentStatus.RUNNING:
            doc.history.append(HistoryEntry(at=now, from_status=ExperimentStatus.RUNNING, to=target,
                                            who="test", why="stopped"))
    doc.status = target
    doc.started_at = now
    store.save(doc, key=key)
    return doc


def make_lem(state_dir: Path, experiment_id: str, *, status: str = "interrupted", pid: int | None = None,
             v2: bool = False, failed: bool = False, config_path: str | None = None,
             started: Any = None) -> Path:
    """An llenergymeasure state file (v1, or v2 with ``v2=True``) written as llenergymeasure does."""
    from datetime import datetime, timedelta

    from state.lem import LemExperimentState, LemV2ExperimentState
    from state.paths import state_file_for

    started = started or datetime.now() - timedelta(minutes=5)
    if v2:
        phase = {"running": "measuring", "completed": "done"}.get(status, "initialising")
        model: Any = LemV2ExperimentState(experiment_id=experiment_id, phase=phase, failed=failed,
                                          subprocess_pid=pid, started_at=started, last_updated=started)
    else:
        model = LemExperimentState(experiment_id=experiment_id, status=status, subprocess_pid=pid,
                                   config_path=config_path, started_at=started, last_updated=started,
                                   total_runs=4, completed_runs={"a": "x"})
    path = state_file_for(state_dir, experiment_id)
    path.write_text(model.to_json())
    return path


FAKE_LEM = '''\
#!{python}
import json, os, sys, time
with open(os.environ["FAKE_LEM_OUT"], "a") as out:
    out.write(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(), "pid": os.getpid()}}) + "\\n")
print("fake lem running", flush=True)
time.sleep(float(os.environ.get("FAKE_LEM_SLEEP", "0")))
'''


def install_fake_lem(bin_dir: Path, name: str = "lem") -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text(FAKE_LEM.format(python=sys.executable))
    path.chmod(0o755)
    return path


def fake_lem_calls(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
