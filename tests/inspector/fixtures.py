"""Builders for the inspector tests: a project with a study file and experiments in its state dir.

The builders work in the current directory (tests ``chdir`` into a temp
folder) with relative paths, and everything shown on screen is fixed (times,
hosts, pids, file mtimes), so snapshots are deterministic and show no temp
path. The study file is real Python; the steps' recorded source and hash come
from ``inspect.getsource`` on the imported module, as a runner records them.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from state.hashing import compute_config_hash, source_hash
from state.journal import JournalEntry
from state.lem import LemExperimentState, LemV2ExperimentState, ProcessProgress
from state.native import (
    EnergyInfo,
    ExceptionInfo,
    ExperimentDoc,
    HistoryEntry,
    OwnerIdentity,
    ProcessInfo,
    ResumeSpec,
    RunRecord,
    RunStatus,
    StepInfo,
)
from state.store import StateStore
from state.transitions import ExperimentPhase, ExperimentStatus, ProcessStatus

FROZEN = datetime(2026, 3, 14, 9, 30, 0, tzinfo=timezone.utc)
EXPERIMENT_ID = "energy-sweep-01"
LEM_ID = "lem-llama-sweep"
STUDY_NAME = "study.py"

STUDY_SOURCE = '''"""An energy sweep: load, warm up, measure."""


def load_model(params, state):
    """Load the model the params name."""
    state["model"] = params.get("model", "llama-3-8b")
    return {"load_s": 1.5}


def warmup(params, state):
    for _ in range(params.get("warmup", 2)):
        state["warm"] = True
    return {}


def measure(params, state):
    if params["batch_size"] > 8:
        raise MemoryError("CUDA out of memory")
    return {"energy_j": 12.5 * params["batch_size"]}
'''

TRACEBACK = """Traceback (most recent call last):
  File "/srv/lab/energy/runner.py", line 88, in run_step
    result = step(params, state)
  File "/srv/lab/energy/study.py", line 18, in measure
    raise MemoryError("CUDA out of memory")
MemoryError: CUDA out of memory
"""


def at(minutes: float) -> datetime:
    """A fixed time, ``minutes`` after the experiment was created."""
    return FROZEN - timedelta(minutes=30) + timedelta(minutes=minutes)


def freeze_mtime(path: Path) -> None:
    stamp = int(FROZEN.timestamp() * 1e9)
    os.utime(path, ns=(stamp, stamp))


def write_study(source: str = STUDY_SOURCE) -> Path:
    path = Path(STUDY_NAME)
    path.write_text(source, encoding="utf-8")
    return path


def recorded_steps(study: Path) -> list[StepInfo]:
    """StepInfo for each function of the study, recorded as a runner does."""
    name = f"_inspector_study_{abs(hash(str(study)))}"
    spec = importlib.util.spec_from_file_location(name, study)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        steps = []
        for fn_name in ("load_model", "warmup", "measure"):
            fn = getattr(module, fn_name)
            source = inspect.getsource(fn)
            steps.append(
                StepInfo(
                    name=fn_name,
                    qualname=fn.__qualname__,
                    file=str(study),
                    line=fn.__code__.co_firstlineno,
                    source=source,
                    source_hash=source_hash(source),
                )
            )
        return steps
    finally:
        sys.modules.pop(name, None)


def _run(index: int, batch: int, precision: str, status: RunStatus, proc: int, **extra) -> RunRecord:
    fields = {}
    if status is RunStatus.COMPLETED:
        fields = {"energy_j": 12.5 * batch, "tokens_per_s": round(310.2 / batch, 2), "latency_ms": 40.0 + batch}
    return RunRecord(
        id_run=f"r-{index:04d}",
        index=index,
        params={"batch_size": batch, "precision": precision},
        fields=fields,
        state={"seed": 1000 + index},
        status=status,
        process_index=proc,
        attempt=1,
        started_at=at(2 + index * 3) if status is not RunStatus.PENDING else None,
        completed_at=at(4 + index * 3) if status in (RunStatus.COMPLETED, RunStatus.FAILED) else None,
        **extra,
    )


def build_doc(study: Path, root: Path) -> ExperimentDoc:
    config = {"model": "llama-3-8b", "dtype": "bf16", "max_new_tokens": 128}
    worker = lambda i, pid: OwnerIdentity(host="gpu-node-7", boot_id="3f2a9c1e-boot", pid=pid, start_ticks=880000 + i, role="worker", process_index=i)  # noqa: E731
    runs = [
        _run(0, 1, "bf16", RunStatus.COMPLETED, 0),
        _run(1, 1, "fp16", RunStatus.COMPLETED, 1),
        _run(2, 4, "bf16", RunStatus.COMPLETED, 0),
        _run(3, 4, "fp16", RunStatus.RUNNING, 0, current_step="measure"),
        _run(
            4, 16, "bf16", RunStatus.FAILED, 1,
            exception=ExceptionInfo(type="MemoryError", message="CUDA out of memory", traceback=TRACEBACK),
        ),
        _run(5, 16, "fp16", RunStatus.PENDING, 1),
    ]
    return ExperimentDoc(
        experiment_id=EXPERIMENT_ID,
        name="energy sweep",
        status=ExperimentStatus.RUNNING,
        attempt=2,
        study_path=str(study),
        config=config,
        config_hash=compute_config_hash(config),
        fields={"site": "lab-a"},
        grid={"batch_size": [1, 4, 16], "precision": ["bf16", "fp16"]},
        num_processes=2,
        owner=OwnerIdentity(host="gpu-node-7", boot_id="3f2a9c1e-boot", pid=4242, start_ticks=879999),
        heartbeat_at=FROZEN - timedelta(seconds=3),
        heartbeat_interval_s=2.0,
        processes={
            "0": ProcessInfo(
                process_index=0, status=ProcessStatus.RUNNING, gpu_id=0, owner=worker(0, 4250),
                runs_total=3, runs_done=2, current_run="r-0003", current_step="measure",
                started_at=at(1), heartbeat_at=FROZEN - timedelta(seconds=3),
            ),
            "1": ProcessInfo(
                process_index=1, status=ProcessStatus.FAILED, gpu_id=1, owner=worker(1, 4251),
                runs_total=3, runs_done=1, runs_failed=1, started_at=at(1), completed_at=at(16),
                error_message="MemoryError: CUDA out of memory",
            ),
        },
        runs=runs,
        steps=recorded_steps(study),
        resume=ResumeSpec(argv=["expwatch", "run", STUDY_NAME, "--resume", EXPERIMENT_ID], cwd="."),
        log_path=str(root / ".expwatch" / "logs" / f"{EXPERIMENT_ID}.log"),
        energy=EnergyInfo(
            gpu_ids=[0, 1], start_mj={"0": 1_000_000, "1": 2_000_000},
            latest_mj={"0": 1_450_000, "1": 2_300_000}, simulated=True, updated_at=FROZEN,
        ),
        history=[
            HistoryEntry(at=at(0), from_status=None, to=ExperimentStatus.INITIALISED, who="alice", why="created"),
            HistoryEntry(at=at(1), from_status=ExperimentStatus.INITIALISED, to=ExperimentStatus.RUNNING, who="alice", why="started"),
            HistoryEntry(at=at(20), from_status=ExperimentStatus.RUNNING, to=ExperimentStatus.INTERRUPTED, who="bob", why="owner dead"),
            HistoryEntry(at=at(25), from_status=ExperimentStatus.INTERRUPTED, to=ExperimentStatus.RUNNING, who="alice", why="resumed"),
        ],
        created_at=at(0),
        started_at=at(1),
        last_updated=FROZEN,
    )


def write_journal(store: StateStore, entries: list[JournalEntry]) -> None:
    store.sidecar_dir.mkdir(parents=True, exist_ok=True)
    with store.journal.path.open("a", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry.to_json_dict()) + "\n")


JOURNAL = [
    JournalEntry(at(20).isoformat(), "bob", "laptop-3", EXPERIMENT_ID, "mark-stale", "running", "interrupted", "pid 4242: no such process"),
    JournalEntry(at(21).isoformat(), "bob", "laptop-3", "some-other-experiment", "resume", "failed", "running", None),
    JournalEntry(at(25).isoformat(), "alice", "gpu-node-7", EXPERIMENT_ID, "resume", "interrupted", "running", "resumed by hand"),
]


def make_project() -> tuple[StateStore, Path]:
    """The study file and an empty state dir ``.state``, in the current directory."""
    root = Path(".state")
    root.mkdir()
    return StateStore(root, durable=False), write_study()


def save(store: StateStore, model, *, create: bool = False) -> str:
    """Write ``model`` through the store (frozen mtime); returns the file key."""
    saved = store.create(model) if create else store.save(model)
    freeze_mtime(saved.path)
    return saved.path.name[:-5]


def create_experiment() -> tuple[StateStore, str, Path]:
    """The expwatch experiment (failed run with traceback, three steps) and its journal."""
    store, study = make_project()
    key = save(store, build_doc(study, store.root), create=True)
    write_journal(store, JOURNAL)
    return store, key, study


def create_lem(store: StateStore) -> str:
    state = LemExperimentState(
        experiment_id=LEM_ID,
        status=ExperimentStatus.RUNNING,
        cycle_id=2,
        config_path="configs/llama.yaml",
        config_hash="0123456789abcdef",
        model_name="meta-llama/Llama-3-8B",
        num_processes=2,
        subprocess_pid=51234,
        process_progress={
            0: ProcessProgress(process_index=0, status=ProcessStatus.COMPLETED, gpu_id=0,
                               started_at=at(1).replace(tzinfo=None), completed_at=at(9).replace(tzinfo=None)),
            1: ProcessProgress(process_index=1, status=ProcessStatus.RUNNING, gpu_id=1,
                               started_at=at(1).replace(tzinfo=None)),
        },
        started_at=at(1).replace(tzinfo=None),
        completed_runs={"cycle_0": "results/cycle_0.json", "cycle_1": "results/cycle_1.json"},
        failed_runs={"cycle_2": "OOM on GPU 1"},
        total_runs=4,
    )
    key = save(store, state, create=True)
    write_journal(store, [JournalEntry(at(22).isoformat(), "bob", "laptop-3", LEM_ID, "mark-stale", "running", "interrupted", "pid 51234: no such process")])
    return key


def create_lem_v2(store: StateStore) -> str:
    state = LemV2ExperimentState(
        experiment_id="lem-v2-run", phase=ExperimentPhase.MEASURING, config_hash="fedcba9876543210",
        started_at=at(3).replace(tzinfo=None), subprocess_pid=60001,
    )
    return save(store, state, create=True)


BROKEN_BYTES = b'{\n  "experiment_id": "half-written",\n  "status": "runn\xff\xfeing",\n  "process_progress": {\n    "0": {"process_index": 0, "st'


def create_broken(store: StateStore, name: str = "half-written") -> str:
    path = store.root / f"{name}.json"
    path.write_bytes(BROKEN_BYTES)
    freeze_mtime(path)
    return name
