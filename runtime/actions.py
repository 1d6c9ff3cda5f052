"""The actions expwatch takes on experiments: judge, mark stale, clean up, resume.

The dashboard and the command line call the same functions. Every action
re-reads the file, validates under the store's lock (with a compare-and-swap
on the version the caller saw, when given), journals what it did, and
refuses with one line (``ActionRefused``) when it must not act. A read-only
store is refused before anything is read or written.

Thread safety: each call works on its own ``StateStore`` instance over the
caller's directory, so the caller's store (and its scan cache) is never
touched from a worker thread.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from runtime.launcher import (
    DEFAULT_LEM_TEMPLATE,
    LaunchError,
    expand_template,
    find_executable,
    launch_detached,
    log_path_for,
    python_env,
    resolve_template,
    runner_argv,
)
from runtime.liveness import LocalProbe, identity_of, probe as probe_pid
from state.atomic import atomic_write_bytes
from state.detect import summarize
from state.journal import current_user
from state.lem import STALE_MESSAGE, LemExperimentState, LemV2ExperimentState
from state.mutations import apply_transition, current_status, mark_stale
from state.native import ExperimentDoc, ProcessInfo, RunStatus
from state.paths import is_candidate_state_file
from state.record import ExperimentRecord, FileVersion, StateFormat
from state.store import ConflictError, Loaded, StateStore, StoreError
from state.transitions import ExperimentStatus, ProcessStatus
from state.verdict import LivenessProbe, StaleVerdict, judge_record

__all__ = [
    "DEFAULT_LEM_TEMPLATE",
    "ActionRefused",
    "ResumePlan",
    "ResumeResult",
    "StaleMarkResult",
    "cleanup_stale",
    "load_experiment",
    "mark_stale_experiment",
    "plan_cleanup",
    "plan_resume",
    "resolve_key",
    "resume_experiment",
    "verdict_for",
]

S = ExperimentStatus


class ActionRefused(StoreError):
    """The action is not allowed now; the message says why in one line."""


# -- helpers -----------------------------------------------------------------
def _refuse_read_only(store: StateStore, what: str) -> None:
    if store.read_only:
        raise ActionRefused(f"read-only (observer) mode: refusing to {what}")


def _probe(probe: LivenessProbe | None) -> LivenessProbe:
    return probe if probe is not None else LocalProbe()


def _private(store: StateStore, key: str | None = None) -> StateStore:
    """A store of our own over the same directory, knowing just ``key``."""
    private = StateStore(store.root, read_only=store.read_only, durable=store.durable)
    if key is not None:
        private.refresh([f"{key}.json"])
    return private


def resolve_key(store: StateStore, ident: str) -> str:
    """The file key for an id or a key, without touching ``store``'s cache.

    A key whose file exists resolves at once; anything else takes a scan of a
    private store (same rules as ``StateStore.resolve``).
    """
    name = f"{ident}.json"
    if ident and "/" not in ident and ident not in (".", "..") and is_candidate_state_file(name):
        if os.path.lexists(store.root / name):
            return ident
    private = StateStore(store.root, read_only=True)
    private.scan()
    return private.resolve(ident)


def _load(store: StateStore, ident: str) -> tuple[Loaded, ExperimentRecord]:
    key = resolve_key(store, ident)
    loaded = _private(store, key).load(key)
    record = summarize(loaded.key, loaded.path, loaded.version, loaded.format, loaded.model)
    return loaded, record


def load_experiment(store: StateStore, ident: str) -> tuple[Loaded, ExperimentRecord]:
    """Read one experiment fresh from disk, with its summary (a read: allowed when read-only)."""
    return _load(store, ident)


def verdict_for(
    record: ExperimentRecord, *, probe: LivenessProbe | None = None, now: datetime | None = None
) -> StaleVerdict:
    """Is anybody still running this experiment? (design §4)"""
    p = _probe(probe)
    return judge_record(record, here=p.host_facts(), probe=p.probe, now=now or datetime.now().astimezone())


def _stale_marked(doc: ExperimentDoc, *, who: str, reason: str) -> ExperimentDoc:
    """Our format's stale mark: interrupted, with the dead processes and runs tidied."""
    marked = apply_transition(doc, S.INTERRUPTED, who=who, why=f"{STALE_MESSAGE}: {reason}")
    assert isinstance(marked, ExperimentDoc)
    marked.error_message = STALE_MESSAGE
    processes = {}
    for key, info in doc.processes.items():
        if info.status in (ProcessStatus.RUNNING, ProcessStatus.PENDING):
            info = info.model_copy(update={
                "status": ProcessStatus.FAILED,
                "error_message": "no longer running (stale)",
                "current_run": None,
                "current_step": None,
            })
        processes[key] = info
    runs = []
    for rec in doc.runs:
        if rec.status is RunStatus.RUNNING:
            rec = rec.model_copy(update={"status": RunStatus.PENDING, "current_step": None})
        runs.append(rec)
    return marked.model_copy(update={"processes": processes, "runs": runs})


def _mark(model: Any, *, who: str, reason: str) -> Any:
    if isinstance(model, ExperimentDoc):
        return _stale_marked(model, who=who, reason=reason)
    return mark_stale(model, who=who)


# -- mark stale ----------------------------------------------------------------
@dataclass(frozen=True)
class StaleMarkResult:
    experiment_id: str
    verdict: StaleVerdict
    from_status: str
    to_status: str


def mark_stale_experiment(
    store: StateStore,
    ident: str,
    *,
    expected: FileVersion | None = None,
    probe: LivenessProbe | None = None,
    force: bool = False,
) -> StaleMarkResult:
    """Mark a running experiment whose owners are dead as interrupted (v2: failed).

    Refused unless the verdict is dead (``force`` overrides an alive or
    unknown verdict, and says so in the journal).
    """
    _refuse_read_only(store, f"mark {ident} stale")
    loaded, record = _load(store, ident)
    if expected is not None and loaded.version != expected:
        raise ConflictError(f"{loaded.path.name} changed since it was read; reload and try again")
    if record.status != S.RUNNING.value:
        raise ActionRefused(f"{record.experiment_id} is {record.status}, not running: nothing to mark stale")
    verdict = verdict_for(record, probe=probe)
    if not verdict.is_dead and not force:
        raise ActionRefused(
            f"refusing to mark {record.experiment_id} stale: owner is {verdict.liveness.value} ({verdict.reason})"
        )
    who = current_user()

    def change(model: Any) -> Any:
        if current_status(model) is not S.RUNNING:
            raise ActionRefused(f"{model.experiment_id} is no longer running")
        return _mark(model, who=who, reason=verdict.reason)

    private = _private(store, loaded.key)
    before, saved = private.update(loaded.key, change, expected=loaded.version)
    reason = verdict.reason if verdict.is_dead else f"forced while owner {verdict.liveness.value}: {verdict.reason}"
    private.journal_action(before, saved, action="mark-stale", reason=reason)
    return StaleMarkResult(
        experiment_id=record.experiment_id,
        verdict=verdict,
        from_status=S.RUNNING.value,
        to_status=current_status(saved.model).value,
    )


def plan_cleanup(
    store: StateStore, *, probe: LivenessProbe | None = None
) -> list[tuple[ExperimentRecord, StaleVerdict]]:
    """Running experiments whose owners are all dead (what ``cleanup_stale`` would mark)."""
    _refuse_read_only(store, "clean up stale experiments")
    private = _private(store)
    private.scan()
    found = []
    for record in sorted(private.records(), key=lambda r: r.key):
        if record.status != S.RUNNING.value:
            continue
        verdict = verdict_for(record, probe=probe)
        if verdict.is_dead:
            found.append((record, verdict))
    return found


def cleanup_stale(store: StateStore, *, probe: LivenessProbe | None = None) -> list[StaleMarkResult]:
    """Mark every dead running experiment interrupted; files that changed meanwhile are left."""
    results = []
    for record, _verdict in plan_cleanup(store, probe=probe):
        try:
            results.append(mark_stale_experiment(store, record.key, expected=record.version, probe=probe))
        except (ActionRefused, ConflictError):
            continue
    return results


# -- resume --------------------------------------------------------------------
@dataclass(frozen=True)
class ResumePlan:
    experiment_id: str
    key: str
    format: StateFormat
    allowed: bool
    refusal: str | None
    verdict: StaleVerdict
    needs_stale_mark: bool
    argv: tuple[str, ...]
    cwd: Path
    log_path: Path
    runs_to_run: int
    runs_skipped: int
    runs_failed_rerun: int
    status: str = ""
    version: FileVersion | None = None
    retry_failed: bool = False
    runs_failed_kept: int = 0
    attempt: int | None = None
    env: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    def describe(self) -> list[str]:
        """Human lines for the dry-run preview and the confirmation modal."""
        lines = [f"Resume {self.experiment_id} ({self.format.value}), now {self.status}"]
        if not self.allowed:
            lines.append(f"Refused: {self.refusal}")
        if self.needs_stale_mark:
            lines.append(f"First marked interrupted: {self.verdict.reason}")
        else:
            lines.append(f"Owner: {self.verdict.liveness.value} ({self.verdict.reason})")
        if self.format is StateFormat.EXPWATCH:
            lines.append(
                f"Runs: {self.runs_to_run} to run, {self.runs_skipped} completed (skipped)"
                + (f", {self.runs_failed_rerun} failed to rerun" if self.runs_failed_rerun else "")
            )
            if self.runs_failed_kept:
                lines.append(f"Failed runs kept as failed: {self.runs_failed_kept} (--retry-failed reruns them)")
            if self.attempt is not None:
                lines.append(f"Attempt: {self.attempt}")
        else:
            lines.append("Runs: llenergymeasure decides which runs to repeat")
        lines.append(f"Command: {shlex.join(self.argv)}" if self.argv else "Command: (none)")
        lines.append(f"In: {self.cwd}")
        lines.append(f"Log: {self.log_path}")
        return lines


@dataclass(frozen=True)
class ResumeResult:
    plan: ResumePlan
    pid: int
    log_path: Path


def _liveness_refusal(status: str, verdict: StaleVerdict) -> tuple[str | None, bool]:
    """(refusal, needs_stale_mark) from the status and the owner verdict."""
    if status == S.RUNNING.value:
        if verdict.is_alive:
            return f"already running ({verdict.reason})", False
        if not verdict.is_dead:
            return f"running, and its owner cannot be confirmed dead ({verdict.reason})", False
        return None, True
    if verdict.is_alive:
        return f"an owner process is still alive ({verdict.reason})", False
    return None, False


def _plan_native(
    store: StateStore, loaded: Loaded, record: ExperimentRecord, verdict: StaleVerdict, retry_failed: bool
) -> ResumePlan:
    doc = loaded.model
    assert isinstance(doc, ExperimentDoc)
    completed = sum(1 for r in doc.runs if r.status is RunStatus.COMPLETED)
    failed = sum(1 for r in doc.runs if r.status is RunStatus.FAILED)
    waiting = len(doc.runs) - completed - failed
    rerun = failed if retry_failed else 0
    status = doc.status.value
    refusal, needs_mark = _liveness_refusal(status, verdict)
    if refusal is None:
        if doc.status in (S.COMPLETED, S.AGGREGATED):
            refusal = f"already {status}: nothing to resume"
        elif doc.status is S.INITIALISED and not verdict.is_dead:
            refusal = f"initialised, and its owner cannot be confirmed dead ({verdict.reason})"
        elif waiting + rerun == 0 and failed:
            refusal = (
                f"{status} with {failed} failed run{'s' if failed != 1 else ''} and nothing pending; "
                "use --retry-failed to rerun them"
            )
        elif doc.study_path and not Path(doc.study_path).is_file():
            refusal = f"the study file {doc.study_path} is gone"
    root = store.root.resolve()
    if doc.resume is not None and doc.resume.argv:
        argv = tuple(doc.resume.argv)
        cwd = Path(doc.resume.cwd)
        env = dict(doc.resume.env)
    else:
        argv = tuple(runner_argv(doc.experiment_id, root))
        cwd = root.parent
        env = {}
    if not cwd.is_dir():
        cwd = Path(doc.study_path).parent if doc.study_path else root.parent
    log_path = Path(doc.log_path) if doc.log_path else log_path_for(store.logs_dir.resolve(), loaded.key)
    return ResumePlan(
        experiment_id=doc.experiment_id,
        key=loaded.key,
        format=loaded.format,
        allowed=refusal is None,
        refusal=refusal,
        verdict=verdict,
        needs_stale_mark=needs_mark and refusal is None,
        argv=argv,
        cwd=cwd,
        log_path=log_path,
        runs_to_run=waiting + rerun,
        runs_skipped=completed,
        runs_failed_rerun=rerun,
        status=status,
        version=loaded.version,
        retry_failed=retry_failed,
        runs_failed_kept=failed - rerun,
        attempt=doc.attempt + 1,
        env=env,
    )


def _launch_record_path(store: StateStore, key: str) -> Path:
    return store.sidecar_dir / "launches" / f"{key}.json"


def _live_launch(store: StateStore, key: str) -> str | None:
    """A still-running process launched by an earlier resume of this experiment, described."""
    try:
        data = json.loads(_launch_record_path(store, key).read_text())
        pid = int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    evidence = probe_pid(pid)
    if not evidence.exists or evidence.zombie:
        return None
    ticks = data.get("start_ticks")
    if ticks is not None and evidence.start_ticks is not None and ticks != evidence.start_ticks:
        return None
    return f"pid {pid} launched {data.get('at', '?')} is still running"


def _plan_lem(
    store: StateStore,
    loaded: Loaded,
    record: ExperimentRecord,
    verdict: StaleVerdict,
    retry_failed: bool,
    template: str | None,
) -> ResumePlan:
    model = loaded.model
    assert isinstance(model, (LemExperimentState, LemV2ExperimentState))
    root = store.root.resolve()
    status = record.status
    refusal, needs_mark = _liveness_refusal(status, verdict)
    if refusal is None:
        if status in (S.COMPLETED.value, S.AGGREGATED.value):
            refusal = f"already {status}: nothing to resume"
        elif status == S.INITIALISED.value:
            refusal = "initialised: llenergymeasure has not started it, nothing to resume"
    argv: tuple[str, ...] = ()
    chosen = resolve_template(template)
    try:
        argv = tuple(
            expand_template(
                chosen,
                experiment_id=model.experiment_id,
                state_dir=str(root),
                config_path=getattr(model, "config_path", None) or "",
            )
        )
        find_executable(argv)
    except LaunchError as exc:
        refusal = refusal or f"{exc} (resume template {chosen!r})"
    if refusal is None:
        refusal = _live_launch(store, loaded.key)
        if refusal:
            refusal = f"a resume is already under way: {refusal}"
    total = record.runs_total
    return ResumePlan(
        experiment_id=model.experiment_id,
        key=loaded.key,
        format=loaded.format,
        allowed=refusal is None,
        refusal=refusal,
        verdict=verdict,
        needs_stale_mark=needs_mark and refusal is None,
        argv=argv,
        cwd=root.parent,
        log_path=log_path_for(store.logs_dir.resolve(), loaded.key),
        runs_to_run=max(0, total - record.runs_done - (0 if retry_failed else record.runs_failed)),
        runs_skipped=record.runs_done,
        runs_failed_rerun=record.runs_failed if retry_failed else 0,
        status=status,
        version=loaded.version,
        retry_failed=retry_failed,
    )


def plan_resume(
    store: StateStore,
    ident: str,
    *,
    retry_failed: bool = False,
    template: str | None = None,
    probe: LivenessProbe | None = None,
) -> ResumePlan:
    """What resuming would do, and whether it is allowed now; changes nothing.

    On a read-only store the plan is still made (the inspector shows the
    command) but it is never allowed.
    """
    loaded, record = _load(store, ident)
    verdict = verdict_for(record, probe=probe)
    if loaded.format is StateFormat.EXPWATCH:
        plan = _plan_native(store, loaded, record, verdict, retry_failed)
    else:
        plan = _plan_lem(store, loaded, record, verdict, retry_failed, template)
    if store.read_only:
        plan = replace(
            plan,
            allowed=False,
            refusal=f"read-only (observer) mode: refusing to resume {plan.experiment_id}",
            needs_stale_mark=False,
        )
    return plan


def resume_experiment(
    store: StateStore,
    ident: str,
    *,
    retry_failed: bool = False,
    template: str | None = None,
    expected: FileVersion | None = None,
    probe: LivenessProbe | None = None,
) -> ResumeResult:
    """Resume: validated transition, detached relaunch, journal. Raises ``ActionRefused``."""
    _refuse_read_only(store, f"resume {ident}")
    plan = plan_resume(store, ident, retry_failed=retry_failed, template=template, probe=probe)
    if expected is not None and plan.version != expected:
        raise ConflictError(f"{plan.key}.json changed since it was read; reload and try again")
    if not plan.allowed:
        raise ActionRefused(f"cannot resume {plan.experiment_id}: {plan.refusal}")
    if plan.format is StateFormat.EXPWATCH:
        return _resume_native(store, plan, probe=probe)
    return _resume_lem(store, plan, probe=probe)


def _kill(proc: Any) -> None:
    try:
        proc.kill()
    except OSError:
        pass


def _after_conflict(store: StateStore, plan: ResumePlan, probe: LivenessProbe | None) -> ActionRefused | None:
    """The file moved under us: say why resuming is now refused, if it is."""
    try:
        fresh = plan_resume(store, plan.key, retry_failed=plan.retry_failed, probe=probe)
    except StoreError:
        return None
    if not fresh.allowed:
        return ActionRefused(f"cannot resume {plan.experiment_id}: {fresh.refusal}")
    return None


def _resume_native(store: StateStore, plan: ResumePlan, *, probe: LivenessProbe | None) -> ResumeResult:
    private = _private(store, plan.key)
    who = current_user()
    launched: dict[str, Any] = {}

    def change(model: Any) -> ExperimentDoc:
        doc = model
        assert isinstance(doc, ExperimentDoc)
        if doc.status is S.RUNNING:
            doc = _stale_marked(doc, who=who, reason=plan.verdict.reason)
        next_attempt = doc.attempt + 1
        proc = launch_detached(
            plan.argv,
            cwd=plan.cwd,
            log_path=plan.log_path,
            env=python_env(plan.env),
            header=f"resume attempt {next_attempt} by {who}",
        )
        launched["proc"] = proc
        owner = identity_of(proc.pid, role="coordinator")
        why = f"resumed by {who}: attempt {next_attempt}, {plan.runs_to_run} runs to run (pid {proc.pid})"
        resumed = apply_transition(doc, S.RUNNING, who=who, why=why)
        assert isinstance(resumed, ExperimentDoc)
        runs = []
        for rec in resumed.runs:
            if rec.status is RunStatus.RUNNING or (plan.retry_failed and rec.status is RunStatus.FAILED):
                rec = rec.model_copy(update={"status": RunStatus.PENDING, "current_step": None})
            runs.append(rec)
        now = datetime.now().astimezone()
        processes = {
            str(i): ProcessInfo(process_index=i, gpu_id=resumed.processes.get(str(i), ProcessInfo(process_index=i)).gpu_id)
            for i in range(resumed.num_processes)
        }
        return resumed.model_copy(update={
            "owner": owner,
            "runs": runs,
            "processes": processes,
            "heartbeat_at": now,
            "log_path": str(plan.log_path),
        })

    try:
        before, saved = private.update(plan.key, change, expected=plan.version)
    except ConflictError:
        if "proc" in launched:
            _kill(launched["proc"])
            raise
        refused = _after_conflict(store, plan, probe)
        if refused is not None:
            raise refused from None
        raise
    except LaunchError as exc:
        raise ActionRefused(f"cannot resume {plan.experiment_id}: {exc}") from None
    except BaseException:
        if "proc" in launched:
            _kill(launched["proc"])
        raise
    proc = launched["proc"]
    if plan.needs_stale_mark:
        private.journal.append(
            experiment=plan.experiment_id,
            action="mark-stale",
            from_status=S.RUNNING.value,
            to_status=S.INTERRUPTED.value,
            reason=plan.verdict.reason,
        )
    private.journal.append(
        experiment=plan.experiment_id,
        action="resume",
        from_status=S.INTERRUPTED.value if plan.needs_stale_mark else current_status(before.model).value,
        to_status=current_status(saved.model).value,
        reason=f"attempt {saved.model.attempt}, {plan.runs_to_run} runs to run"
        + (" (failed runs retried)" if plan.retry_failed else "")
        + f"; pid {proc.pid}; log {plan.log_path}",
    )
    return ResumeResult(plan=plan, pid=proc.pid, log_path=plan.log_path)


def _resume_lem(store: StateStore, plan: ResumePlan, *, probe: LivenessProbe | None) -> ResumeResult:
    private = _private(store, plan.key)
    expected = plan.version
    from_status = plan.status
    if plan.needs_stale_mark:
        mark_stale_experiment(store, plan.key, expected=plan.version, probe=probe)
        expected = None
        from_status = S.INTERRUPTED.value
    with private.lock(plan.key):
        loaded = private.load(plan.key)
        status = current_status(loaded.model).value
        if expected is not None and loaded.version != expected:
            refused = _after_conflict_locked(loaded, plan)
            raise refused or ConflictError(f"{plan.key}.json changed since it was read; reload and try again")
        if status not in (S.INTERRUPTED.value, S.FAILED.value):
            raise ActionRefused(f"cannot resume {plan.experiment_id}: it is {status} now")
        running = _live_launch(private, plan.key)
        if running:
            raise ActionRefused(f"cannot resume {plan.experiment_id}: a resume is already under way: {running}")
        try:
            proc = launch_detached(plan.argv, cwd=plan.cwd, log_path=plan.log_path, header="resume (llenergymeasure)")
        except LaunchError as exc:
            raise ActionRefused(f"cannot resume {plan.experiment_id}: {exc}") from None
        _write_launch_record(private, plan, proc.pid)
    private.journal.append(
        experiment=plan.experiment_id,
        action="resume",
        from_status=from_status,
        to_status=S.RUNNING.value,
        reason=f"launched {shlex.join(plan.argv)} in {plan.cwd} (pid {proc.pid}); log {plan.log_path}",
    )
    return ResumeResult(plan=plan, pid=proc.pid, log_path=plan.log_path)


def _after_conflict_locked(loaded: Loaded, plan: ResumePlan) -> ActionRefused | None:
    status = current_status(loaded.model).value
    if status not in (S.INTERRUPTED.value, S.FAILED.value):
        return ActionRefused(f"cannot resume {plan.experiment_id}: it is {status} now")
    return None


def _write_launch_record(store: StateStore, plan: ResumePlan, pid: int) -> None:
    me = identity_of(pid, role="resume")
    record = {
        "experiment_id": plan.experiment_id,
        "pid": pid,
        "start_ticks": me.start_ticks,
        "start_time": me.start_time,
        "host": me.host,
        "argv": list(plan.argv),
        "cwd": str(plan.cwd),
        "log_path": str(plan.log_path),
        "at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    path = _launch_record_path(store, plan.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = store.sidecar_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(record, indent=2).encode(), tmp_dir=tmp, durable=store.durable)

