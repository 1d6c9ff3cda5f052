"""Resume: a validated transition (interrupted|failed -> running) and a detached relaunch.

Planned once, shown (dry run, confirmation dialog), executed as planned
(design §5, §8). The plan carries the file version it was made on; execution
launches nothing and writes nothing unless the file is still at that version,
so a resume from elsewhere between the dialog and the key press is a
conflict, not a second launch.

expwatch experiments resume through our runner: the new owner is recorded
under the store's lock the runner waits for. llenergymeasure experiments
resume by running their command, which owns their status; a sidecar launch
record stands in for an owner, and its version is part of the plan too.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.actions.common import (
    ActionRefused,
    changed_since_plan,
    journal_failure,
    journal_opened,
    load_experiment,
    local_probe,
    private_store,
    refuse_read_only,
    verdict_for,
)
from runtime.actions.stale import StalePlan, execute_mark_stale, stale_marked
from runtime.launcher import (
    CARRIED_ENV,
    FORMAT_WRITERS,
    STUDY_TEMPLATE_ENV,
    TEMPLATE_ENV,
    LaunchError,
    expand_template,
    find_executable,
    launch_detached,
    python_env,
    resolve_study_template,
    resolve_template,
    runner_argv,
)
from runtime.liveness import identity_of
from runtime.runner.args import ResumeArgs
from state.atomic import atomic_write_bytes
from state.inspection.display import display_path
from state.journal import JournalAppender, current_user
from state.lem import LemExperimentState, LemV2ExperimentState, lem_incomplete_reason
from state.lem_study import RESUMABLE_STUDY_STATUSES, STUDY_CONFIG, StudyManifest
from state.mutations import apply_transition, current_status
from state.native import ExperimentDoc, ProcessInfo, RunStatus
from state.record import ExperimentRecord, FileVersion, StateFormat
from state.store import ConflictError, Loaded, StateStore

if TYPE_CHECKING:
    import subprocess
from state.text import printable
from state.transitions import ExperimentStatus
from state.verdict import LivenessProbe, StaleVerdict

S = ExperimentStatus


@dataclass(frozen=True)
class ResumePlan:
    experiment_id: str
    key: str
    format: StateFormat
    refusal: str | None
    verdict: StaleVerdict
    owner_dead: bool
    """The file says running but every owner is dead: a resume marks it interrupted first."""
    argv: tuple[str, ...]
    cwd: Path
    log_path: Path
    runs_to_run: int
    runs_skipped: int
    runs_failed_rerun: int
    version: FileVersion
    """The version of the file planned on; execution acts only on this one."""
    status: str = ""
    retry_failed: bool = False
    runs_failed_kept: int = 0
    attempt: int | None = None
    env: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    notes: tuple[str, ...] = ()
    """What the plan chose over what the file records (a moved directory, a log path elsewhere)."""
    launch_record: FileVersion | None = None
    """llenergymeasure: the version of the last resume's launch record when planned (None: none)."""
    refused_by: str | None = None
    """The expwatch safety rule that refused (a live owner, ...); None when allowed or refused otherwise."""
    incomplete_reason: str | None = None
    """6-state files: why llenergymeasure's own ``find_incomplete`` lists it (None: it does not)."""

    @classmethod
    def of(
        cls, loaded: Loaded, experiment_id: str, verdict: StaleVerdict, *,
        refusal: str | None, refused_by: str | None, owner_dead: bool, **rest: Any,
    ) -> ResumePlan:
        """A plan of ``loaded``: its key, format and version come from the file as read."""
        return cls(experiment_id=experiment_id, key=loaded.key, format=loaded.format, refusal=refusal,
                   verdict=verdict, owner_dead=owner_dead, version=loaded.version, refused_by=refused_by, **rest)

    @property
    def to_run(self) -> str:
        """``N runs to run`` (``1 run``), as every message about the resume says it."""
        return f"{self.runs_to_run} run{'' if self.runs_to_run == 1 else 's'} to run"

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    @property
    def needs_stale_mark(self) -> bool:
        return self.owner_dead and self.refusal is None

    def describe(
        self, *, refusal: bool = True, retry_hint: str = "--retry-failed reruns them", base: Path | None = None
    ) -> list[str]:
        """Human lines for the dry-run preview and the confirmation modal.

        A dialog that shows the refusal on its own passes ``refusal=False`` (said once, not
        twice); ``retry_hint`` says how to rerun failed runs where this plan keeps them;
        ``base`` shows the paths under it relative to it (the dashboard's working directory).
        """
        shown = (lambda p: display_path(p, base) if Path(p).is_absolute() else str(p)) if base else str
        lines = [f"Resume {self.experiment_id} ({self.format.value}), now {self.status}"]
        if refusal and not self.allowed:
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
                lines.append(f"Failed runs kept as failed: {self.runs_failed_kept} ({retry_hint})")
            if self.attempt is not None:
                lines.append(f"Attempt: {self.attempt}")
        elif self.format is StateFormat.LEM_STUDY:
            lines.append(f"Entries: {self.runs_to_run} to run again, {self.runs_skipped} completed (llem skips them)")
        else:
            lines.append("Runs: llenergymeasure decides which runs to repeat")
        if self.incomplete_reason:
            lines.append(f"llenergymeasure: incomplete ({self.incomplete_reason})")
        lines.append(f"Command: {shlex.join(shown(a) for a in self.argv)}" if self.argv else "Command: (none)")
        lines.append(f"In: {shown(self.cwd)}")
        lines.append(f"Log: {shown(self.log_path)}")
        lines += [f"Note: {note}" for note in self.notes]
        return lines


@dataclass(frozen=True)
class ResumeResult:
    plan: ResumePlan
    pid: int
    log_path: Path
    journal_error: str | None = None
    """Set when the launch happened but its journal line was not written (the journal broke in between)."""


# -- planning ------------------------------------------------------------------------
RULE_LIVE_OWNER = "live owner"
RULE_OWNER_UNCONFIRMED = "owner not confirmed dead"
RULE_RESUME_UNDER_WAY = "resume under way"


def _refused_by(rule: str, text: str) -> str:
    """A safety refusal says which of expwatch's rules refused, after the reason."""
    return f"{text} [expwatch safety rule: {rule}]"


def _liveness_refusal(status: str, verdict: StaleVerdict) -> tuple[str | None, str | None, bool]:
    """(refusal, the rule that refused, needs_stale_mark) from the status and the owner verdict."""
    if status == S.RUNNING.value:
        if verdict.is_alive:
            return _refused_by(RULE_LIVE_OWNER, f"already running ({verdict.reason})"), RULE_LIVE_OWNER, False
        if not verdict.is_dead:
            text = f"running, and its owner cannot be confirmed dead ({verdict.reason})"
            return _refused_by(RULE_OWNER_UNCONFIRMED, text), RULE_OWNER_UNCONFIRMED, False
        return None, None, True
    if verdict.is_alive:
        text = f"an owner process is still alive ({verdict.reason})"
        return _refused_by(RULE_LIVE_OWNER, text), RULE_LIVE_OWNER, False
    return None, None, False


RULE_FOREIGN_FILE = "another user's file"


def _foreign_owner(path: Path) -> str | None:
    """Why a state file we do not own must not be resumed by us (None when it is ours).

    Resuming runs the study module the file names, with the Python and the
    environment it records: a file written by another user would choose code
    that runs as us.
    """
    try:
        uid = path.stat().st_uid
    except OSError:
        return None  # the plan re-reads it; a vanished file is refused there as a conflict
    if uid == os.geteuid():
        return None
    try:
        import pwd

        name = pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        name = f"uid {uid}"
    return (f"{path.name} belongs to {name}: resuming it would run the study it names as you; "
            f"ask {name} to resume it, or copy the directory and resume the copy")


def _recorded_launch(
    doc: ExperimentDoc, root: Path, *, trusted: bool, notes: list[str]
) -> tuple[tuple[str, ...], Path, dict[str, str]]:
    """(argv, cwd, env) of the relaunch, from the file's recorded command where it is ours.

    Only expwatch's runner is ever launched: a recorded command that is something
    else is shown in a note and ignored. The recorded Python and the carried
    variables are used only from the user's own file (``trusted``); anything
    outside ``CARRIED_ENV`` is dropped. Paths in the file are hints: the
    directory the user pointed at wins (a copied or moved one).
    """
    spec = doc.resume
    recorded = ResumeArgs.from_command(spec.argv) if spec is not None else None
    if spec is None or recorded is None:
        if spec is not None and spec.argv:
            notes.append(f"recorded command {shlex.join(printable(a) for a in spec.argv[:8])} "
                         "is not expwatch's runner: ignored")
        cwd = Path(spec.cwd) if spec is not None else root.parent
        return tuple(runner_argv(doc.experiment_id, root)), cwd, {}
    args, python = recorded
    if not trusted or not (os.path.isabs(python) and os.path.isfile(python) and os.access(python, os.X_OK)):
        if python != sys.executable:
            notes.append(f"recorded Python {printable(python)} not used: runs with {sys.executable}")
        python = sys.executable
    if not trusted and (args.hub is not None or args.host_name is not None):
        notes.append("recorded hub not used: run.shared stays beside the experiment")
        args = replace(args, hub=None, host_name=None)
    was = Path(args.state_dir)
    argv = tuple(replace(args, state_dir=root).to_argv(python))
    cwd = Path(spec.cwd)
    env = {k: v for k, v in spec.env.items() if trusted and k in CARRIED_ENV}
    dropped = sorted(set(spec.env) - set(env))
    if dropped:
        notes.append(f"recorded environment not carried: {', '.join(printable(k) for k in dropped[:8])}")
    if was.resolve() != root:
        notes.append(f"recorded for {was}; resumes in {root}, where you pointed")
        if cwd == was.parent or cwd == was.resolve().parent:
            cwd = root.parent
    return argv, cwd, env


def _plan_native(
    store: StateStore, loaded: Loaded, verdict: StaleVerdict, retry_failed: bool
) -> ResumePlan:
    doc = loaded.model
    assert isinstance(doc, ExperimentDoc)
    completed = sum(1 for r in doc.runs if r.status is RunStatus.COMPLETED)
    failed = sum(1 for r in doc.runs if r.status is RunStatus.FAILED)
    waiting = len(doc.runs) - completed - failed
    rerun = failed if retry_failed else 0
    status = doc.status.value
    refusal, rule, needs_mark = _liveness_refusal(status, verdict)
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
    notes: list[str] = []
    foreign = _foreign_owner(loaded.path)
    if refusal is None and foreign is not None:
        refusal = _refused_by(RULE_FOREIGN_FILE, foreign)
    argv, cwd, env = _recorded_launch(doc, root, trusted=foreign is None, notes=notes)
    if not cwd.is_dir():
        cwd = Path(doc.study_path).parent if doc.study_path else root.parent
    log_path, log_note = store.log_file(loaded.key, doc.log_path)
    if log_note:
        notes.append(log_note)
    return ResumePlan.of(
        loaded, doc.experiment_id, verdict, refusal=refusal, refused_by=rule, owner_dead=needs_mark,
        argv=argv,
        cwd=cwd,
        log_path=log_path,
        runs_to_run=waiting + rerun,
        runs_skipped=completed,
        runs_failed_rerun=rerun,
        status=status,
        retry_failed=retry_failed,
        runs_failed_kept=failed - rerun,
        attempt=doc.attempt + 1,
        env=env,
        notes=tuple(notes),
    )


def _plan_lem(
    store: StateStore,
    loaded: Loaded,
    record: ExperimentRecord,
    verdict: StaleVerdict,
    retry_failed: bool,
    template: str | None,
    probe: LivenessProbe,
) -> ResumePlan:
    model = loaded.model
    assert isinstance(model, (LemExperimentState, LemV2ExperimentState))
    root = store.root.resolve()
    status = record.status
    refusal, rule, needs_mark = _liveness_refusal(status, verdict)
    incomplete = lem_incomplete_reason(status) if loaded.format is StateFormat.LEM_V1 else None
    if refusal is None:
        if loaded.format is StateFormat.LEM_V1 and incomplete is None:
            refusal = f"{status}: not among llenergymeasure's incomplete experiments, nothing to resume"
        elif loaded.format is StateFormat.LEM_V1:
            pass
        elif status in (S.COMPLETED.value, S.AGGREGATED.value):
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
        refusal = refusal or f"{exc} (resume template {chosen!r}, set ${TEMPLATE_ENV} or --resume-template to change it)"
    refusal, launch_record, rule = _launch_guard(store, loaded.key, probe, refusal, rule)
    notes = [f"llenergymeasure lists it as incomplete: {incomplete}"] if incomplete else []
    if template is None and not os.environ.get(TEMPLATE_ENV):
        notes.append(f"command: the default for {FORMAT_WRITERS[loaded.format]} (set ${TEMPLATE_ENV} to change it)")
    total = record.runs_total
    return ResumePlan.of(
        loaded, model.experiment_id, verdict, refusal=refusal, refused_by=rule, owner_dead=needs_mark,
        argv=argv,
        cwd=root.parent,
        log_path=store.log_file(loaded.key, None)[0],
        runs_to_run=max(0, total - record.runs_done - (0 if retry_failed else record.runs_failed)),
        runs_skipped=record.runs_done,
        runs_failed_rerun=record.runs_failed if retry_failed else 0,
        status=status,
        retry_failed=retry_failed,
        launch_record=launch_record,
        incomplete_reason=incomplete,
        notes=tuple(notes),
    )


def _launch_guard(
    store: StateStore, key: str, probe: LivenessProbe, refusal: str | None, rule: str | None
) -> tuple[str | None, FileVersion | None, str | None]:
    """(refusal, launch record version, rule): a resume launched earlier and still running refuses another."""
    launch_record = _launch_record_version(store, key)
    if refusal is None:
        running = _live_launch(store, key, probe)
        if running:
            refusal = _refused_by(RULE_RESUME_UNDER_WAY, f"a resume is already under way: {running}")
            rule = RULE_RESUME_UNDER_WAY
    return refusal, launch_record, rule


def _plan_study(
    store: StateStore,
    loaded: Loaded,
    record: ExperimentRecord,
    verdict: StaleVerdict,
    template: str | None,
    probe: LivenessProbe,
) -> ResumePlan:
    """A llenergymeasure 0.7.0 study: ``llem run`` on its saved config with ``--resume-dir``.

    ``llem`` skips the completed entries itself. It runs in the folder the
    study was started from, which llenergymeasure does not record: the one
    holding the output folder (``<here>/results/<study>``), the default layout.
    """
    model = loaded.model
    assert isinstance(model, StudyManifest)
    study_dir = loaded.path.resolve().parent
    refusal, rule, needs_mark = _liveness_refusal(record.status, verdict)
    if refusal is None and model.status != "running" and model.status not in RESUMABLE_STUDY_STATUSES:
        refusal = f"already {model.status}: nothing to resume"
    config = study_dir / STUDY_CONFIG
    if refusal is None and not config.is_file():
        refusal = f"the study's saved config {config} is missing"
    chosen = resolve_study_template(template)
    argv: tuple[str, ...] = ()
    try:
        argv = tuple(expand_template(chosen, experiment_id=record.experiment_id, study_dir=str(study_dir),
                                     state_dir=str(store.root.resolve()), config_path=str(config)))
        find_executable(argv)
    except LaunchError as exc:
        refusal = refusal or f"{exc} (resume template {chosen!r}, set ${STUDY_TEMPLATE_ENV} or --study-resume-template to change it)"
    refusal, launch_record, rule = _launch_guard(store, loaded.key, probe, refusal, rule)
    cwd = study_dir.parent.parent if study_dir.parent.parent.is_dir() else study_dir.parent
    left = sum(1 for e in model.experiments if e.status != "completed")
    return ResumePlan.of(
        loaded, record.experiment_id, verdict, refusal=refusal, refused_by=rule, owner_dead=needs_mark,
        argv=argv,
        cwd=cwd,
        log_path=store.log_file(loaded.key, None)[0],
        runs_to_run=left,
        runs_skipped=model.completed,
        runs_failed_rerun=model.failed,
        status=model.status,
        launch_record=launch_record,
    )


def plan_resume(
    store: StateStore,
    ident: str,
    *,
    template: str | None = None,
    probe: LivenessProbe | None = None,
    retry_failed: bool = False,
    now: datetime | None = None,
    study_template: str | None = None,
) -> ResumePlan:
    """What resuming would do, and whether it is allowed now; changes nothing.

    ``template`` is the 6-state files' command, ``study_template`` the 0.7.0
    studies' (each defaults to its environment variable, then to what that
    llenergymeasure version calls itself). On a read-only store the plan is
    still made (the inspector shows the command) but it is never allowed.
    """
    p = local_probe(probe)
    loaded, record = load_experiment(store, ident)
    verdict = verdict_for(record, probe=p, now=now)
    if loaded.format is StateFormat.EXPWATCH:
        plan = _plan_native(store, loaded, verdict, retry_failed)
    elif loaded.format is StateFormat.LEM_STUDY:
        plan = _plan_study(store, loaded, record, verdict, study_template, p)
    else:
        plan = _plan_lem(store, loaded, record, verdict, retry_failed, template, p)
    if store.read_only:
        plan = replace(
            plan,
            refusal=f"read-only (observer) mode: refusing to resume {plan.experiment_id}",
            refused_by="read-only",
        )
    return plan


# -- execution -----------------------------------------------------------------------
def execute_resume(store: StateStore, plan: ResumePlan, *, probe: LivenessProbe | None = None) -> ResumeResult:
    """Launch exactly what ``plan`` says, once; journal it.

    ``ConflictError`` when the file is no longer at ``plan.version`` (or, for
    llenergymeasure, another resume was launched since): nothing is written
    and nothing is launched. A second execution of one plan is therefore
    refused: the first one moved the version on.
    """
    refuse_read_only(store, f"resume {plan.experiment_id}")
    if not plan.allowed:
        raise ActionRefused(f"cannot resume {plan.experiment_id}: {plan.refusal}")
    if plan.format is StateFormat.EXPWATCH:
        return _resume_native(store, plan)
    return _resume_lem(store, plan, local_probe(probe))


def resume_experiment(
    store: StateStore,
    ident: str,
    *,
    retry_failed: bool = False,
    template: str | None = None,
    expected: FileVersion | None = None,
    probe: LivenessProbe | None = None,
) -> ResumeResult:
    """Plan and execute at once (the CLI: the user confirmed by typing the command).

    ``expected`` is the version the caller saw, if it saw one: a file that
    has moved since is a conflict, as with a plan.
    """
    refuse_read_only(store, f"resume {ident}")
    plan = plan_resume(store, ident, retry_failed=retry_failed, template=template, probe=probe)
    if expected is not None and plan.version != expected:
        raise changed_since_plan(plan.key)
    return execute_resume(store, plan, probe=probe)


def _kill(proc: Any) -> None:
    try:
        proc.kill()
    except OSError:
        pass


def _resume_native(store: StateStore, plan: ResumePlan) -> ResumeResult:
    """Launch the runner and record it as owner in one locked read-modify-write.

    The store checks the version before ``change`` runs, so a conflict
    launches nothing; a write that fails after the launch kills it.
    """
    private = private_store(store, plan.key)
    who = current_user()
    launched: dict[str, Any] = {}

    def change(model: Any) -> ExperimentDoc:
        doc = model
        assert isinstance(doc, ExperimentDoc)
        if plan.needs_stale_mark:
            doc = stale_marked(doc, who=who, reason=plan.verdict.reason)
        next_attempt = doc.attempt + 1
        private.prepare_logs()
        proc = launch_detached(
            plan.argv,
            cwd=plan.cwd,
            log_path=plan.log_path,
            env=python_env(plan.env),
            header=f"resume attempt {next_attempt} by {who}",
        )
        launched["proc"] = proc
        owner = identity_of(proc.pid, role="coordinator")
        why = f"resumed by {who}: attempt {next_attempt}, {plan.to_run} (pid {proc.pid})"
        resumed = apply_transition(doc, S.RUNNING, who=who, why=why)
        assert isinstance(resumed, ExperimentDoc)
        runs = [
            rec.model_copy(update={"status": RunStatus.PENDING, "current_step": None})
            if rec.status is RunStatus.RUNNING or (plan.retry_failed and rec.status is RunStatus.FAILED)
            else rec
            for rec in resumed.runs
        ]
        processes = {
            str(i): ProcessInfo(process_index=i, gpu_id=resumed.processes.get(str(i), ProcessInfo(process_index=i)).gpu_id)
            for i in range(resumed.num_processes)
        }
        return resumed.model_copy(update={
            "owner": owner,
            "runs": runs,
            "processes": processes,
            "heartbeat_at": datetime.now().astimezone(),
            "log_path": str(plan.log_path),
        })

    with journal_opened(private, f"resume {plan.experiment_id}") as journal:
        try:
            before, saved = private.update(plan.key, change, expected=plan.version)
        except LaunchError as exc:
            raise ActionRefused(f"cannot resume {plan.experiment_id}: {exc}") from None
        except BaseException:
            if "proc" in launched:
                _kill(launched["proc"])
            raise
        proc = launched["proc"]
        try:
            if plan.needs_stale_mark:
                journal.append(
                    experiment=plan.experiment_id,
                    action="mark-stale",
                    from_status=S.RUNNING.value,
                    to_status=S.INTERRUPTED.value,
                    reason=plan.verdict.reason,
                )
            journal.append(
                experiment=plan.experiment_id,
                action="resume",
                from_status=S.INTERRUPTED.value if plan.needs_stale_mark else current_status(before.model).value,
                to_status=current_status(saved.model).value,
                reason=f"attempt {saved.model.attempt}, {plan.to_run}"
                + (" (failed runs retried)" if plan.retry_failed else "")
                + f"; pid {proc.pid}; log {plan.log_path}",
            )
        except OSError as exc:
            return ResumeResult(plan=plan, pid=proc.pid, log_path=plan.log_path, journal_error=journal_failure(exc))
    return ResumeResult(plan=plan, pid=proc.pid, log_path=plan.log_path)


def _resume_lem(store: StateStore, plan: ResumePlan, probe: LivenessProbe) -> ResumeResult:
    """Mark a dead running file stale first (its own compare-and-swap), then launch under the lock."""
    with journal_opened(private_store(store), f"resume {plan.experiment_id}") as journal:
        return _resume_lem_journalled(store, plan, probe, journal)


def _resume_lem_journalled(
    store: StateStore, plan: ResumePlan, probe: LivenessProbe, journal: JournalAppender
) -> ResumeResult:
    private = private_store(store, plan.key)
    expected = plan.version
    from_status = plan.status
    journal_error = None
    if plan.needs_stale_mark:
        mark = execute_mark_stale(store, StalePlan(
            experiment_id=plan.experiment_id,
            key=plan.key,
            format=plan.format,
            version=plan.version,
            status=plan.status,
            verdict=plan.verdict,
            refusal=None,
        ))
        expected, from_status, journal_error = mark.version, mark.to_status, mark.journal_error
    try:
        proc = _launch_lem(private, plan, probe, expected)
    except (ActionRefused, ConflictError) as exc:
        if not plan.needs_stale_mark:
            raise
        # The mark stands (its owner is dead, and it is journalled): the refusal must not read as if nothing changed.
        raise type(exc)(f"{exc}; it was marked interrupted before the launch (its owner is dead) and stays so") from None
    try:
        journal.append(
            experiment=plan.experiment_id,
            action="resume",
            from_status=from_status,
            to_status=S.RUNNING.value,
            reason=f"launched {shlex.join(plan.argv)} in {plan.cwd} (pid {proc.pid}); log {plan.log_path}",
        )
    except OSError as exc:
        journal_error = journal_failure(exc)
    return ResumeResult(plan=plan, pid=proc.pid, log_path=plan.log_path, journal_error=journal_error)


def _launch_lem(private: StateStore, plan: ResumePlan, probe: LivenessProbe, expected: FileVersion) -> subprocess.Popen[bytes]:
    """Launch llenergymeasure's resume under the file's lock, once, if the file is still as ``expected``."""
    with private.lock(plan.key):
        if private.load(plan.key).version != expected:
            raise changed_since_plan(plan.key)
        running = _live_launch(private, plan.key, probe)
        if running:
            raise ActionRefused(f"cannot resume {plan.experiment_id}: a resume is already under way: {running}")
        if _launch_record_version(private, plan.key) != plan.launch_record:
            raise ConflictError(
                f"another resume of {plan.experiment_id} was launched since the plan was made; "
                "nothing was done, plan again"
            )
        try:
            private.prepare_logs()
            proc = launch_detached(plan.argv, cwd=plan.cwd, log_path=plan.log_path, header="resume (llenergymeasure)")
        except LaunchError as exc:
            raise ActionRefused(f"cannot resume {plan.experiment_id}: {exc}") from None
        _write_launch_record(private, plan, proc.pid)
    return proc


# -- llenergymeasure launch records -----------------------------------------------------
def _launch_record_path(store: StateStore, key: str) -> Path:
    return store.sidecar_dir / "launches" / f"{key}.json"


def _launch_record_version(store: StateStore, key: str) -> FileVersion | None:
    try:
        st = _launch_record_path(store, key).stat()
    except FileNotFoundError:
        return None
    return FileVersion(st.st_ino, st.st_mtime_ns, st.st_size)


def _live_launch(store: StateStore, key: str, probe: LivenessProbe) -> str | None:
    """A still-running process launched by an earlier resume of this experiment, described."""
    try:
        data = json.loads(_launch_record_path(store, key).read_text())
        pid = int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    evidence = probe.probe(pid)
    if not evidence.exists or evidence.zombie:
        return None
    ticks = data.get("start_ticks")
    if ticks is not None and evidence.start_ticks is not None and ticks != evidence.start_ticks:
        return None
    return f"pid {pid} launched {data.get('at', '?')} is still running"


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
