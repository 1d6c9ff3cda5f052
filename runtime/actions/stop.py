"""Stop: ask a live expwatch runner to stop, as Ctrl-C in its terminal would.

The first stop sends SIGINT to the experiment's coordinator, which stops its
workers at a run boundary and leaves the experiment interrupted (resumable). A
stop asked again once the runner's grace period has passed sends SIGTERM: the
coordinator then terminates its workers at once.

Only a process proven to be the experiment's is ever signalled: the
coordinator recorded in the file, on this host and boot, whose start time is
the recorded one (``judge_owner``). The proof is checked again through a pidfd
just before the signal goes, so a PID reused between the check and the signal
cannot be hit. Formats that record no such identity (llenergymeasure's PID
only, or none) are refused with the reason.

The plan is made once and executed as planned. A running experiment's file
changes with every heartbeat, so the plan's file version cannot be the
condition here; the owner is: execution refuses (conflict) if the file now
names another coordinator or is no longer running.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from datetime import datetime

from runtime.actions.common import (
    ActionRefused,
    load_experiment,
    local_probe,
    private_store,
    read_only_refusal,
    refuse_read_only,
)
from runtime.runner.args import ResumeArgs
from runtime.runner.options import RunnerOptions
from state.native import ExperimentDoc, OwnerIdentity
from state.record import ExperimentRecord, FileVersion, StateFormat
from state.store import ConflictError, StateStore
from state.transitions import ExperimentStatus
from state.durations import duration
from state.verdict import LivenessProbe, StaleVerdict, judge_owner

RUNNING = ExperimentStatus.RUNNING.value
JOURNAL_ACTION = "stop"

NO_IDENTITY = {
    StateFormat.LEM_V1: "llenergymeasure records only a PID, not the process's start time",
    StateFormat.LEM_V2: "llenergymeasure records only a PID, not the process's start time",
    StateFormat.LEM_STUDY: "an llenergymeasure study records no PID at all",
}


@dataclass(frozen=True)
class StopPlan:
    """Stopping one experiment, as judged: which process gets which signal, or why none."""

    experiment_id: str
    key: str
    format: StateFormat
    version: FileVersion
    status: str
    owner: OwnerIdentity | None
    verdict: StaleVerdict | None
    """The coordinator's own verdict (None when there was nothing to judge)."""
    signum: signal.Signals | None
    grace_s: float
    asked_at: datetime | None = None
    """When a stop was last asked of this same coordinator (from the journal), if ever."""
    refusal: str | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    def describe(self) -> list[str]:
        """Human lines for the confirmation dialog and the CLI's dry run."""
        lines = [f"status: {self.status}"]
        if self.owner is not None:
            lines.append(f"coordinator: pid {self.owner.pid} on {self.owner.host}")
        if self.verdict is not None:
            lines.append(f"verdict: {self.verdict.liveness.value}: {self.verdict.reason}")
        lines.append("")
        if self.refusal is not None:
            lines.append(f"Refused: {self.refusal}")
        elif self.signum is signal.SIGINT:
            lines.append(
                "It sends SIGINT to the coordinator: the workers stop at a run boundary (within its "
                f"{self.grace_s:g}s grace) and the experiment is left interrupted, to resume later."
            )
        else:
            lines.append(
                f"A stop was asked {self._asked_ago()} ago and it still runs. It sends SIGTERM: the coordinator "
                "terminates its workers now; the runs in progress are lost."
            )
        return lines

    def _asked_ago(self) -> str:
        if self.asked_at is None:
            return "?"
        return duration((datetime.now().astimezone() - self.asked_at).total_seconds())


@dataclass(frozen=True)
class StopResult:
    experiment_id: str
    pid: int
    signum: signal.Signals
    grace_s: float


def owner_tag(owner: OwnerIdentity) -> str:
    """The coordinator as the journal names it: enough to tell a later coordinator of the same experiment apart."""
    started = owner.start_ticks if owner.start_ticks is not None else owner.start_time
    return f"coordinator pid {owner.pid} on {owner.host} (started {started})"


def _grace_of(model: object) -> float:
    """The runner's grace period, as its recorded command line says (the runner's default otherwise)."""
    if isinstance(model, ExperimentDoc) and model.resume is not None:
        parsed = ResumeArgs.from_command(model.resume.argv)
        if parsed is not None and parsed[0].grace_s is not None:
            return parsed[0].grace_s
    return RunnerOptions.grace_s


def _last_asked(store: StateStore, experiment_id: str, owner: OwnerIdentity) -> datetime | None:
    tag = owner_tag(owner)
    last = None
    for entry in store.journal.entries(experiment_id):
        if entry.action == JOURNAL_ACTION and tag in (entry.reason or ""):
            with contextlib.suppress(ValueError):
                last = datetime.fromisoformat(entry.time)
    return last


def _identity_refusal(record: ExperimentRecord) -> str | None:
    if record.format in NO_IDENTITY:
        return (
            f"{NO_IDENTITY[record.format]}: expwatch cannot prove which process is this experiment's, "
            "so it signals none (stop it where it runs)"
        )
    owner = record.owner
    if owner is None:
        return "no coordinator is recorded: nothing can be proven to be this experiment's"
    if owner.start_ticks is None and owner.start_time is None:
        return f"coordinator pid {owner.pid} has no recorded start time: it cannot be proven to be this experiment's"
    return None


def plan_stop(
    store: StateStore, ident: str, *, probe: LivenessProbe | None = None, now: datetime | None = None
) -> StopPlan:
    """Read the file fresh and judge its coordinator; changes nothing (allowed when read-only)."""
    loaded, record = load_experiment(store, ident)
    now = now or datetime.now().astimezone()
    p = local_probe(probe)
    grace = _grace_of(loaded.model)
    refusal = read_only_refusal(store)
    if refusal is None and record.status != RUNNING:
        refusal = f"it is {record.status}, not running"
    if refusal is None:
        refusal = _identity_refusal(record)
    owner, verdict, sig, asked = record.owner, None, None, None
    if owner is not None:
        here = p.host_facts()
        verdict = _judge(owner, record, p, now)
        if refusal is None and owner.host != here.host:
            refusal = f"its coordinator runs on {owner.host}: run `expwatch stop {record.experiment_id}` there"
        elif refusal is None and not verdict.is_alive:
            refusal = f"its coordinator is not proven alive ({verdict.reason}); there is nothing to signal"
    if refusal is None and owner is not None:
        asked = _last_asked(store, record.experiment_id, owner)
        sig = signal.SIGINT
        if asked is not None:
            waited = (now - asked).total_seconds()
            if waited < grace:
                refusal = (
                    f"already stopping: SIGINT sent {duration(waited)} ago and the runner has {grace:g}s of grace "
                    f"to finish its current runs; ask again after {duration(grace - waited)} to send SIGTERM"
                )
                sig = None
            else:
                sig = signal.SIGTERM
    return StopPlan(
        experiment_id=record.experiment_id,
        key=record.key,
        format=record.format,
        version=record.version,
        status=record.status,
        owner=owner,
        verdict=verdict,
        signum=sig,
        grace_s=grace,
        asked_at=asked,
        refusal=refusal,
    )


def _judge(owner: OwnerIdentity, record: ExperimentRecord, probe: LivenessProbe, now: datetime) -> StaleVerdict:
    here = probe.host_facts()
    return judge_owner(
        owner,
        here=here,
        evidence=probe.probe(owner.pid) if owner.host == here.host else None,
        heartbeat_at=record.heartbeat_at,
        heartbeat_interval_s=record.heartbeat_interval_s,
        now=now,
    )


def _send_proven(owner: OwnerIdentity, record: ExperimentRecord, sig: signal.Signals, probe: LivenessProbe) -> None:
    """Signal ``owner`` only if it is still proven to be the recorded process.

    The pidfd is opened first and the proof checked after: a pidfd names one
    process, so a PID that is reused after the check gets nothing.
    """
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(owner.pid)
        except ProcessLookupError:
            raise ActionRefused(f"pid {owner.pid} has exited; nothing was signalled") from None
    try:
        verdict = _judge(owner, record, probe, datetime.now().astimezone())
        if not verdict.is_alive:
            raise ActionRefused(f"no longer proven to be the experiment's ({verdict.reason}); nothing was signalled")
        try:
            if pidfd is not None:
                signal.pidfd_send_signal(pidfd, sig)
            else:
                os.kill(owner.pid, sig)
        except ProcessLookupError:
            raise ActionRefused(f"pid {owner.pid} has exited; nothing was signalled") from None
        except PermissionError:
            raise ActionRefused(f"not allowed to signal pid {owner.pid} (another user's process)") from None
    finally:
        if pidfd is not None:
            os.close(pidfd)


def execute_stop(store: StateStore, plan: StopPlan, *, probe: LivenessProbe | None = None) -> StopResult:
    """Send the planned signal to the planned coordinator, then journal it.

    ``ConflictError`` when the file now names another coordinator or is no
    longer running: nothing is signalled or journalled.
    """
    refuse_read_only(store, f"stop {plan.experiment_id}")
    if plan.refusal is not None or plan.signum is None or plan.owner is None:
        raise ActionRefused(f"refusing to stop {plan.experiment_id}: {plan.refusal}")
    _, record = load_experiment(store, plan.key)
    if record.owner != plan.owner or record.status != RUNNING:
        raise ConflictError(
            f"{plan.key}.json changed since the plan was made (now {record.status}"
            + (", another coordinator" if record.owner != plan.owner else "")
            + "); nothing was signalled, plan again"
        )
    _send_proven(plan.owner, record, plan.signum, local_probe(probe))
    private = private_store(store)
    private.sidecar_dir.mkdir(parents=True, exist_ok=True)
    private.journal.append(
        experiment=plan.experiment_id,
        action=JOURNAL_ACTION,
        from_status=RUNNING,
        to_status=RUNNING,
        reason=f"{plan.signum.name} to {owner_tag(plan.owner)}",
    )
    return StopResult(plan.experiment_id, plan.owner.pid, plan.signum, plan.grace_s)


def stop_experiment(store: StateStore, ident: str, *, probe: LivenessProbe | None = None) -> StopResult:
    """Plan and execute at once (the CLI: the user confirmed by typing the command)."""
    refuse_read_only(store, f"stop {ident}")
    return execute_stop(store, plan_stop(store, ident, probe=probe), probe=probe)
