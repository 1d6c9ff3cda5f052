"""Starting a run: a new experiment from a study file (``expwatch run``), or one handed over by a resume.

Either way this process becomes the experiment's coordinator and returns an
``Outcome`` once every run is done or the run stopped.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from runtime.exit_codes import EXIT_CONFLICT
from runtime.launcher import carried_env, log_path_for
from runtime.liveness import identity_of
from runtime.runner.args import ResumeArgs, hub_for_resume
from runtime.runner.coordinator import Coordinator
from runtime.runner.errors import RunnerError
from runtime.runner.options import RunnerOptions, merge_options
from runtime.runner.spool import discard_all, spool_dir
from runtime.runner.study import MAX_RUNS, GridTooLarge, Study, StudyError, load_study
from state.collector import collector_paused
from state.detect import MAX_STATE_FILE_BYTES
from state.doc_json import RunsJsonCache
from state.hashing import compute_config_hash
from state.journal import current_user
from state.mutations import apply_transition
from state.native import ExperimentDoc, HistoryEntry, ResumeSpec, RunRecord, RunStatus, StepInfo
from state.paths import state_file_for, unsafe_id_reason
from state.store import ConflictError, StateStore
from state.transitions import ExperimentStatus


@dataclass
class Outcome:
    experiment_id: str
    key: str
    status: ExperimentStatus
    exit_code: int
    path: Path
    log_path: Path
    runs_total: int
    runs_completed: int
    runs_failed: int
    message: str


def _now() -> datetime:
    return datetime.now().astimezone()


def new_experiment_id(study_path: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in study_path.stem) or "study"
    return f"{stem}-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def create_experiment(
    store: StateStore,
    study: Study,
    options: RunnerOptions,
    *,
    name: str | None = None,
    experiment_id: str | None = None,
    runs_json: RunsJsonCache | None = None,
) -> tuple[str, ExperimentDoc, Any]:
    """Write a new experiment's first state file; ``runs_json`` keeps its runs' JSON for the coordinator's writes."""
    assert study.path is not None
    experiment_id = experiment_id or new_experiment_id(study.path)
    reason = unsafe_id_reason(experiment_id)
    if reason:
        raise RunnerError(f"--id: {reason}")
    try:
        # 100,000 params dicts, then as many records: the collector's walks would cost more than the building,
        # and after it the first collection walked them all (py-spy: 24 samples in the block's exit).
        # They live as long as the runner: frozen (the coordinator's run gives them back when it ends).
        with collector_paused(then_freeze=True):
            axes, params = study.expand_grid()
            width = max(4, len(str(len(params) - 1)))
            runs = [RunRecord(id_run=f"{i:0{width}d}", index=i, params=p) for i, p in enumerate(params)]
    except GridTooLarge as exc:
        raise RunnerError(
            f"{study.path.name}: the grid is too large ({exc}); one state file holds at most {MAX_RUNS:,} runs "
            f"(it is limited to {MAX_STATE_FILE_BYTES // 2**20} MiB): split the grid"
        ) from None
    except StudyError as exc:
        raise RunnerError(f"{study.path.name}: {exc}") from None
    processes = min(options.processes, len(runs))
    now = _now()
    root = store.root.resolve()
    key = state_file_for(root, experiment_id).name[:-5]
    log_path = log_path_for(store.logs_dir, key).resolve()
    doc = ExperimentDoc(
        experiment_id=experiment_id,
        name=name or study.name or study.path.stem,
        status=ExperimentStatus.INITIALISED,
        attempt=1,
        study_path=str(study.path),
        config=dict(study.config),
        config_hash=compute_config_hash(dict(study.config)),
        fields=dict(study.fields),
        grid=axes,
        num_processes=processes,
        owner=identity_of(),
        heartbeat_at=now,
        heartbeat_interval_s=options.heartbeat_s,
        runs=runs,
        steps=[StepInfo(**info) for info in study.describe_steps()],
        resume=ResumeSpec(
            argv=ResumeArgs(
                experiment_id,
                root,
                gpus=options.gpus,
                fail_fast=options.fail_fast,
                grace_s=options.grace_s,
                workcell=options.workcell,
                hub=hub_for_resume(options.hub),
                host_name=options.host_name,
            ).to_argv(),
            cwd=os.getcwd(),
            env=carried_env(),
        ),
        log_path=str(log_path),
        history=[HistoryEntry(at=now, from_status=None, to=ExperimentStatus.INITIALISED, who=current_user(),
                              why=f"created from {study.path.name}")],
        created_at=now,
        last_updated=now,
    )
    try:
        saved = store.create(doc, encode=runs_json.parts if runs_json is not None else None)
    except ConflictError:
        raise RunnerError(f"an experiment {experiment_id!r} already exists in {store.root}", EXIT_CONFLICT) from None
    discard_all(spool_dir(store.sidecar_dir, key))  # left by an earlier experiment under this key
    return key, doc, saved.version


def run_study(
    study_path: Path | str,
    state_dir: Path | str,
    *,
    processes: int | None = None,
    gpus: Any = None,
    name: str | None = None,
    experiment_id: str | None = None,
    fail_fast: bool | None = None,
    workcell: Path | str | None = None,
    grace_s: float | None = None,
    heartbeat_s: float | None = None,
    hub: str | None = None,
    host_name: str | None = None,
    out: Callable[[str], None] | None = None,
    tune: Callable[[RunnerOptions], None] | None = None,
) -> Outcome:
    """Create an experiment from a study file and run it in this process (the coordinator)."""
    out = out or (lambda line: None)
    try:
        study = load_study(study_path)
    except StudyError as exc:
        raise RunnerError(str(exc)) from None
    options = merge_options(
        study,
        processes=processes,
        gpus=gpus,
        fail_fast=fail_fast or None,
        grace=grace_s,
        heartbeat=heartbeat_s,
        workcell=str(workcell) if workcell else None,
        hub=hub,
        host_name=host_name,
    )
    if tune is not None:
        tune(options)
    if options.hub is not None:
        from runtime.runner.hub_shared import connect

        connect(options.hub).close()  # an unreachable hub stops here, before anything is created
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    store = StateStore(state_dir)
    # The runs' JSON of the first write is the JSON of the coordinator's first write too: built once.
    runs_json = RunsJsonCache()
    key, doc, version = create_experiment(store, study, options, name=name, experiment_id=experiment_id,
                                          runs_json=runs_json)
    assert doc.log_path is not None
    log_path = Path(doc.log_path)
    out(
        f"{doc.experiment_id}: {len(doc.runs)} run{'' if len(doc.runs) == 1 else 's'} on {doc.num_processes} process"
        f"{'es' if doc.num_processes != 1 else ''}; state {store.path_for(key)}; log {log_path}"
    )
    coordinator = Coordinator(store, key, doc, version, study, options, log_path=log_path, out=out, runs_json=runs_json)
    code = coordinator.run()
    return _outcome(coordinator, store, key, code)


def _outcome(coordinator: Coordinator, store: StateStore, key: str, code: int) -> Outcome:
    doc = coordinator.doc
    return Outcome(
        experiment_id=doc.experiment_id,
        key=key,
        status=doc.status,
        exit_code=code,
        path=store.path_for(key),
        log_path=coordinator.log_path,
        runs_total=len(doc.runs),
        runs_completed=sum(1 for r in doc.runs if r.status is RunStatus.COMPLETED),
        runs_failed=sum(1 for r in doc.runs if r.status is RunStatus.FAILED),
        message=getattr(coordinator, "outcome_message", ""),
    )


def adopt_and_run(ident: str, state_dir: Path | str, options: RunnerOptions) -> Outcome:
    """Run an experiment that ``expwatch resume`` handed to this process.

    The resume action recorded this process as the owner (under the store's
    lock, before letting go of it); taking the lock here waits for that write.
    Anything else is refused: the runner never takes an experiment over by itself.
    """
    # Only a resumed runner resolves an id: `expwatch run` does not pay for the actions package's imports.
    from runtime.actions import resolve_key

    store = StateStore(state_dir)
    key = resolve_key(store, ident)
    with store.lock(key, timeout=60.0):
        loaded = store.load(key)
    doc = loaded.model
    if not isinstance(doc, ExperimentDoc):
        raise RunnerError(f"{ident} is not an expwatch experiment")
    me = identity_of()
    owner = doc.owner
    if doc.status is not ExperimentStatus.RUNNING or owner is None or owner.pid != me.pid or (
        owner.start_ticks is not None and me.start_ticks is not None and owner.start_ticks != me.start_ticks
    ):
        raise RunnerError(
            f"{doc.experiment_id} was not handed to this process (status {doc.status.value}); "
            "use `expwatch resume` to resume it",
            EXIT_CONFLICT,
        )
    log_path, log_note = store.log_file(key, doc.log_path)
    try:
        if not doc.study_path:
            raise StudyError("no study file recorded")
        study = load_study(doc.study_path)
    except StudyError as exc:
        failed = apply_transition(doc, ExperimentStatus.FAILED, who=f"{current_user()}@runner",
                                  why=f"cannot load the study: {exc}")
        store.save(failed, expected=loaded.version, key=key)
        raise RunnerError(f"cannot load the study: {exc}") from None
    steps = [StepInfo(**info) for info in study.describe_steps()]
    changed = [s.name for s, old in zip(steps, doc.steps) if s.source_hash != old.source_hash]
    doc.steps = steps
    coordinator = Coordinator(store, key, doc, loaded.version, study, options, log_path=log_path)
    if log_note:
        coordinator.log(log_note)
    if changed or len(steps) != len(doc.steps):
        coordinator.log(f"step sources changed since the last attempt: {', '.join(changed) or 'step list'}")
    code = coordinator.run()
    return _outcome(coordinator, store, key, code)
