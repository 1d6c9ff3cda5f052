"""Mark stale, and clean up: running experiments whose owners are dead become interrupted.

An action is planned once, shown, confirmed and executed as planned (design
§8). The plan holds the verdict the user saw and the version of the file it
was judged on; execution is a compare-and-swap on that version, so a file
that changed in between is refused (``ConflictError``, nothing written,
nothing journalled) instead of being judged again behind the user's back.

Clean-up plans over the records the caller already holds (the dashboard's
board, the CLI's fresh scan): re-reading the directory would judge files the
user was never shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runtime.actions.common import (
    ActionRefused,
    fresh_records,
    journal_failure,
    journal_opened,
    load_experiment,
    local_probe,
    private_store,
    read_only_refusal,
    refuse_read_only,
    verdict_for,
)
from state.atomic import LockTimeout
from state.journal import current_user
from state.lem import STALE_MESSAGE
from state.mutations import apply_transition, current_status, mark_stale
from state.native import ExperimentDoc, RunStatus
from state.record import ExperimentRecord, FileVersion, StateFormat
from state.store import ConflictError, StateStore, StoreError
from state.transitions import ExperimentStatus, ProcessStatus
from state.verdict import RULE_EVIDENCE, RULE_LEM, LivenessProbe, StaleVerdict

S = ExperimentStatus

NOTHING_STALE = "no running experiment has a dead owner"


def stale_marked(model: Any, *, who: str, reason: str) -> Any:
    """The stale mark of any format.

    llenergymeasure's files get their tool's own rule (running -> interrupted,
    v2: failed). Ours also records why in the history and tidies the dead
    processes and runs, so a later resume starts from a truthful file.
    """
    if not isinstance(model, ExperimentDoc):
        return mark_stale(model, who=who)
    marked = apply_transition(model, S.INTERRUPTED, who=who, why=f"{STALE_MESSAGE}: {reason}")
    assert isinstance(marked, ExperimentDoc)
    processes = {}
    for key, info in model.processes.items():
        if info.status in (ProcessStatus.RUNNING, ProcessStatus.PENDING):
            info = info.model_copy(update={
                "status": ProcessStatus.FAILED,
                "error_message": "no longer running (stale)",
                "current_run": None,
                "current_step": None,
            })
        processes[key] = info
    runs = [
        rec.model_copy(update={"status": RunStatus.PENDING, "current_step": None})
        if rec.status is RunStatus.RUNNING else rec
        for rec in model.runs
    ]
    return marked.model_copy(update={"error_message": STALE_MESSAGE, "processes": processes, "runs": runs})


# -- one experiment ------------------------------------------------------------------
@dataclass(frozen=True)
class StalePlan:
    """Marking one experiment stale, as judged: what the confirmation shows and execution does."""

    experiment_id: str
    key: str
    format: StateFormat
    version: FileVersion
    """The version of the file the verdict was made on; execution writes only over this one."""
    status: str
    verdict: StaleVerdict
    refusal: str | None
    forcible: bool = False
    """Whether ``force`` may override the refusal (a verdict short of dead, never a status)."""
    rule: str = RULE_EVIDENCE
    """Which rule made the verdict: expwatch's evidence, or llenergymeasure's own (``RULE_LEM``)."""

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    @property
    def target(self) -> str:
        """The status the mark leaves (llenergymeasure v2 has no interrupted: it fails)."""
        return S.FAILED.value if self.format is StateFormat.LEM_V2 else S.INTERRUPTED.value

    def describe(self, *, refusal: bool = True) -> list[str]:
        """Human lines for the confirmation dialog and the CLI's dry run (``refusal=False``:
        the dialog shows the refusal itself)."""
        verdict = self.verdict
        lines = [
            f"status: {self.status}",
            f"verdict: {verdict.liveness.value}: {verdict.reason}",
            f"rule: {RULE_TEXT[self.rule]}",
            "evidence:",
        ]
        lines += [f"  - {e}" for e in verdict.evidence] or ["  (none)"]
        if self.refusal is not None:
            if refusal:
                lines += ["", f"Refused: {self.refusal}"]
        else:
            lines.append("")
            lines.append(f"It will become {self.target} (with the stale message), and the action is journalled.")
        return lines


@dataclass(frozen=True)
class StaleMarkResult:
    experiment_id: str
    key: str
    verdict: StaleVerdict
    from_status: str
    to_status: str
    version: FileVersion
    """The file's version after the mark (what a following action must expect)."""
    journal_error: str | None = None
    """Set when the mark was written but its journal line was not (the journal broke in between)."""


RULE_TEXT = {
    RULE_EVIDENCE: "expwatch's (dead only with proof: no such process, a reused PID, an expired heartbeat)",
    RULE_LEM: "llenergymeasure's own (a null or not-running subprocess_pid is stale)",
}


def _judged(record: ExperimentRecord, verdict: StaleVerdict, read_only: str | None, rule: str = RULE_EVIDENCE) -> StalePlan:
    refusal, forcible = read_only, False
    if refusal is None:
        if record.status != S.RUNNING.value:
            refusal = f"it is {record.status}, not running"
        elif not verdict.is_dead:
            refusal = (
                f"the owner is {verdict.liveness.value} ({verdict.reason}); only a dead owner can be marked stale"
            )
            # A live runner would carry on under the mark; --force is for owners that only look alive.
            forcible = not verdict.proven
            if verdict.proven:
                refusal += " (--force does not override a running process of this host)"
    return StalePlan(
        experiment_id=record.experiment_id,
        key=record.key,
        format=record.format,
        version=record.version,
        status=record.status,
        verdict=verdict,
        refusal=refusal,
        forcible=forcible,
        rule=rule,
    )


def plan_mark_stale(
    store: StateStore,
    ident: str,
    *,
    probe: LivenessProbe | None = None,
    now: datetime | None = None,
    rule: str = RULE_EVIDENCE,
) -> StalePlan:
    """Read the file fresh and judge its owners; changes nothing (allowed when read-only)."""
    _, record = load_experiment(store, ident)
    rule = _rule_for(record, rule)
    verdict = verdict_for(record, probe=probe, now=now, rule=rule)
    return _judged(record, verdict, read_only_refusal(store), rule)


def _rule_for(record: ExperimentRecord, rule: str) -> str:
    """llenergymeasure's rule applies to its own files only; everything else is judged by the evidence."""
    if rule == RULE_LEM and record.format in (StateFormat.LEM_V1, StateFormat.LEM_V2):
        return RULE_LEM
    return RULE_EVIDENCE


def execute_mark_stale(store: StateStore, plan: StalePlan, *, force: bool = False) -> StaleMarkResult:
    """Write the mark over exactly the planned version, then journal it.

    ``force`` overrides an unknown verdict or one that only looks alive (and
    says so in the journal), never a proven live owner, a status or observer
    mode. ``ConflictError`` when the file is no longer at ``plan.version``,
    ``ActionRefused`` when the journal cannot be opened: nothing is written
    or journalled.
    """
    refuse_read_only(store, f"mark {plan.experiment_id} stale")
    if plan.refusal is not None and not (force and plan.forcible):
        raise ActionRefused(f"refusing to mark {plan.experiment_id} stale: {plan.refusal}")
    who = current_user()
    verdict = plan.verdict
    private = private_store(store, plan.key)
    reason = verdict.reason if verdict.is_dead else f"forced while owner {verdict.liveness.value}: {verdict.reason}"
    journal_error = None
    with journal_opened(private, f"mark {plan.experiment_id} stale") as journal:
        before, saved = private.update(
            plan.key, lambda model: stale_marked(model, who=who, reason=verdict.reason), expected=plan.version
        )
        try:
            private.journal_action(before, saved, action="mark-stale", reason=reason, journal=journal)
        except OSError as exc:
            journal_error = journal_failure(exc)
    return StaleMarkResult(
        experiment_id=plan.experiment_id,
        verdict=verdict,
        from_status=plan.status,
        to_status=current_status(saved.model).value,
        key=plan.key,
        version=saved.version,
        journal_error=journal_error,
    )


def mark_stale_experiment(
    store: StateStore,
    ident: str,
    *,
    expected: FileVersion | None = None,
    probe: LivenessProbe | None = None,
    force: bool = False,
    rule: str = RULE_EVIDENCE,
) -> StaleMarkResult:
    """Plan and execute at once (the CLI: the user confirmed by typing the command).

    ``expected`` is the version the caller saw, if it saw one: a file that
    has moved since is a conflict, as with a plan.
    """
    refuse_read_only(store, f"mark {ident} stale")
    plan = plan_mark_stale(store, ident, probe=probe, rule=rule)
    if expected is not None and plan.version != expected:
        raise ConflictError(f"{plan.key}.json changed since it was read; reload and try again")
    return execute_mark_stale(store, plan, force=force)


# -- every dead one ------------------------------------------------------------------
@dataclass(frozen=True)
class CleanupPlan:
    """The dead running experiments among the records given, one ``StalePlan`` each."""

    marks: tuple[StalePlan, ...] = ()

    def __len__(self) -> int:
        return len(self.marks)

    def __bool__(self) -> bool:
        return bool(self.marks)

    def __iter__(self) -> Iterator[StalePlan]:
        return iter(self.marks)

    @property
    def refusal(self) -> str | None:
        return None if self.marks else NOTHING_STALE

    def describe(self) -> list[str]:
        return [f"{mark.experiment_id}: {mark.verdict.reason}" for mark in self.marks] or [NOTHING_STALE]


@dataclass(frozen=True)
class Skipped:
    plan: StalePlan
    reason: str
    error: Exception | None = field(default=None, compare=False)
    """What refused it, for the caller's exit code."""


@dataclass(frozen=True)
class CleanupResult:
    """What a clean-up did: the marks written, and the planned ones left with why."""

    done: tuple[StaleMarkResult, ...] = ()
    skipped: tuple[Skipped, ...] = ()


def plan_cleanup(
    records: Iterable[ExperimentRecord],
    *,
    probe: LivenessProbe | None = None,
    now: datetime | None = None,
    rule: str = RULE_EVIDENCE,
) -> CleanupPlan:
    """Judge the running ones among ``records``; reads nothing but the liveness evidence."""
    p = local_probe(probe)
    now = now or datetime.now().astimezone()
    marks = []
    for record in sorted(records, key=lambda r: r.key):
        if record.status != S.RUNNING.value:
            continue
        record_rule = _rule_for(record, rule)
        verdict = verdict_for(record, probe=p, now=now, rule=record_rule)
        if verdict.is_dead:
            marks.append(_judged(record, verdict, None, record_rule))
    return CleanupPlan(tuple(marks))


def execute_cleanup(store: StateStore, plan: CleanupPlan) -> CleanupResult:
    """Execute each planned mark; one that changed, went or is locked is skipped, with why."""
    refuse_read_only(store, "clean up stale experiments")
    done: list[StaleMarkResult] = []
    skipped: list[Skipped] = []
    for mark in plan.marks:
        try:
            done.append(execute_mark_stale(store, mark))
        except (StoreError, LockTimeout) as exc:
            skipped.append(Skipped(mark, str(exc), exc))
    return CleanupResult(tuple(done), tuple(skipped))


def cleanup_stale(store: StateStore, *, probe: LivenessProbe | None = None) -> list[StaleMarkResult]:
    """Scan, plan and execute at once; the marks written (files that changed meanwhile are left)."""
    refuse_read_only(store, "clean up stale experiments")
    return list(execute_cleanup(store, plan_cleanup(fresh_records(store), probe=probe)).done)
