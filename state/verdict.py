"""The stale verdict: is anybody still running this experiment?

``os.kill(pid, 0)`` alone lies (PIDs are reused, zombies look alive), so the
verdict weighs evidence: host and boot identity, the process's start time
against the recorded one, heartbeats for owners on other hosts. It is a pure
function of the record, the evidence a probe gathered and the clock; the probe
itself lives in runtime/ and is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from state.durations import duration
from state.record import ExperimentRecord, StateFormat

if TYPE_CHECKING:  # the pydantic models load only where a file is validated
    from state.native import OwnerIdentity

#: Start times from psutil are floats rounded by the kernel's tick (10 ms);
#: two readings of the same process agree far closer than this.
START_TIME_TOLERANCE_S = 0.05
#: Grace for heartbeats: an owner is presumed alive this many intervals after its last one.
HEARTBEAT_LEASE_INTERVALS = 5
MIN_LEASE_S = 15.0


class Liveness(str, Enum):
    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class HostFacts:
    host: str
    boot_id: str | None


@dataclass(frozen=True, slots=True)
class ProcessEvidence:
    """What a probe saw of one PID on this host."""

    pid: int
    exists: bool
    start_time: float | None = None
    start_ticks: int | None = None
    zombie: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ToolProcess:
    """A process of the tool that writes a file with no PID in it (llenergymeasure's ``llem``)."""

    pid: int
    command: str


class LivenessProbe(Protocol):
    def host_facts(self) -> HostFacts: ...

    def probe(self, pid: int) -> ProcessEvidence: ...


#: A probe may also offer ``llenergymeasure_processes() -> Sequence[ToolProcess]`` (this user's, this
#: host's); without it a study manifest, which records no PID, can never be judged dead.
ToolProcesses = Callable[[], Sequence[ToolProcess]]

#: A running study is "probably dead" once its manifest has been quiet this long at least...
STUDY_QUIET_MIN_S = 15 * 60.0
#: ... or this many times its longest entry so far, if that is longer (llenergymeasure rewrites
#: the manifest when each entry starts and ends, so a live study is quiet about one entry's length).
STUDY_QUIET_ENTRY_FACTOR = 3.0


@dataclass(frozen=True, slots=True)
class StaleVerdict:
    liveness: Liveness
    reason: str
    evidence: tuple[str, ...] = ()
    pids: tuple[tuple[int, Liveness], ...] = ()
    """Each probed owner's own verdict, by PID: a process row shows its own, not the experiment's."""
    proven: bool = False
    """Alive beyond doubt: a process on this host and boot whose start time equals the recorded one.

    A heartbeat from another host or a bare llenergymeasure PID only looks alive;
    ``mark-stale --force`` may override those, never a proven owner.
    """

    def liveness_of(self, pid: int | None) -> Liveness:
        """The verdict on one process: its own where it was judged, else its owner's (the experiment's)."""
        if pid is not None:
            for known, liveness in self.pids:
                if known == pid:
                    return liveness
        return self.liveness

    @property
    def is_dead(self) -> bool:
        return self.liveness is Liveness.DEAD

    @property
    def is_alive(self) -> bool:
        return self.liveness is Liveness.ALIVE


def _age(now: datetime, then: datetime) -> float:
    return (now - then).total_seconds()


def judge_owner(
    owner: OwnerIdentity,
    *,
    here: HostFacts,
    evidence: ProcessEvidence | None,
    heartbeat_at: datetime | None,
    heartbeat_interval_s: float | None,
    now: datetime,
) -> StaleVerdict:
    """Verdict on one recorded owner process."""
    who = f"{owner.role} pid {owner.pid} on {owner.host}"
    if owner.host != here.host:
        if heartbeat_at is None:
            return StaleVerdict(Liveness.UNKNOWN, f"{who}: other host, no heartbeat recorded")
        lease = max(MIN_LEASE_S, HEARTBEAT_LEASE_INTERVALS * (heartbeat_interval_s or 2.0))
        age = _age(now, heartbeat_at)
        if age < -lease:
            return StaleVerdict(
                Liveness.UNKNOWN, f"{who}: heartbeat is {duration(-age)} in the future (clock skew)"
            )
        if age <= lease:
            return StaleVerdict(
                Liveness.ALIVE, f"{who}: heartbeat {duration(age)} ago (lease {duration(lease)})"
            )
        return StaleVerdict(
            Liveness.DEAD, f"{who}: no heartbeat for {duration(age)} (lease {duration(lease)})"
        )
    if owner.boot_id and here.boot_id and owner.boot_id != here.boot_id:
        return StaleVerdict(Liveness.DEAD, f"{who}: host rebooted since (boot id differs)")
    if evidence is None:
        return StaleVerdict(Liveness.UNKNOWN, f"{who}: not probed")
    if not evidence.exists:
        if evidence.error:
            return StaleVerdict(Liveness.UNKNOWN, f"{who}: cannot probe ({evidence.error})")
        return StaleVerdict(Liveness.DEAD, f"{who}: no such process")
    if evidence.zombie:
        return StaleVerdict(Liveness.DEAD, f"{who}: zombie (exited, not yet reaped)")
    if owner.start_ticks is not None and evidence.start_ticks is not None:
        if owner.start_ticks != evidence.start_ticks:
            return StaleVerdict(
                Liveness.DEAD, f"{who}: PID reused (start ticks {evidence.start_ticks} != recorded {owner.start_ticks})"
            )
        return StaleVerdict(Liveness.ALIVE, f"{who}: running (start time matches)", proven=True)
    if owner.start_time is not None and evidence.start_time is not None:
        if abs(owner.start_time - evidence.start_time) > START_TIME_TOLERANCE_S:
            return StaleVerdict(Liveness.DEAD, f"{who}: PID reused (process start time differs)")
        return StaleVerdict(Liveness.ALIVE, f"{who}: running (start time matches)", proven=True)
    return StaleVerdict(Liveness.UNKNOWN, f"{who}: exists, but no start time to confirm it is ours")


def _combine(verdicts: list[StaleVerdict], pids: tuple[tuple[int, Liveness], ...] = ()) -> StaleVerdict:
    evidence = tuple(v.reason for v in verdicts)
    alive = [v for v in verdicts if v.is_alive]
    if alive:
        proof = [v for v in alive if v.proven]
        return StaleVerdict(Liveness.ALIVE, (proof or alive)[0].reason, evidence, pids, proven=bool(proof))
    if verdicts and all(v.is_dead for v in verdicts):
        return StaleVerdict(Liveness.DEAD, verdicts[0].reason, evidence, pids)
    unknown = [v for v in verdicts if v.liveness is Liveness.UNKNOWN]
    return StaleVerdict(Liveness.UNKNOWN, unknown[0].reason, evidence, pids)


def judge_legacy_pid(
    pid: int | None,
    *,
    evidence: ProcessEvidence | None,
    started_at: datetime | None,
    last_updated: datetime | None,
    now: datetime,
) -> StaleVerdict:
    """Verdict for llenergymeasure files, which record only ``subprocess_pid``."""
    age = f"file last updated {duration(_age(now, last_updated))} ago" if last_updated else "file age unknown"
    if pid is None:
        return StaleVerdict(Liveness.UNKNOWN, f"no owner recorded; {age}", (age,))
    if evidence is None:
        return StaleVerdict(Liveness.UNKNOWN, f"pid {pid} not probed; {age}", (age,))
    if not evidence.exists:
        if evidence.error:
            return StaleVerdict(Liveness.UNKNOWN, f"pid {pid}: cannot probe ({evidence.error})", (age,))
        return StaleVerdict(Liveness.DEAD, f"pid {pid}: no such process", (age,))
    if evidence.zombie:
        return StaleVerdict(Liveness.DEAD, f"pid {pid}: zombie (exited, not yet reaped)", (age,))
    if evidence.start_time is not None:
        started = started_at.timestamp() if started_at is not None else None
        updated = last_updated.timestamp() if last_updated is not None else None
        if updated is not None and started is not None:
            updated = max(updated, started)  # a file whose last update precedes its start: trust the start
        if updated is not None and evidence.start_time > updated + 1.0:
            return StaleVerdict(
                Liveness.DEAD, f"pid {pid}: PID reused (process started after the file's last update)", (age,)
            )
        if started is not None and evidence.start_time > started + 1.0:
            # Started after the experiment but before its last write: a restarted subprocess of
            # its own, or a stranger that took the number. No proof either way.
            return StaleVerdict(
                Liveness.UNKNOWN,
                f"pid {pid}: a process started after the experiment began but before its last update; "
                "cannot tell whether it is the experiment's",
                (age,),
            )
    return StaleVerdict(
        Liveness.ALIVE, f"pid {pid}: running (no start time recorded to confirm)", (age,)
    )


#: The rules a mark-stale can be decided by.
RULE_EVIDENCE = "evidence"
"""expwatch's: dead only with proof (design §4)."""
RULE_LEM = "llenergymeasure"
"""llenergymeasure's own: a null or not-running ``subprocess_pid`` is stale (a permission error counts as not running)."""


def judge_by_lem_rule(pid: int | None, evidence: ProcessEvidence | None) -> StaleVerdict:
    """llenergymeasure's own stale rule, exactly: for users who want its behaviour over expwatch's proof."""
    rule = "llenergymeasure's rule"
    if pid is None:
        return StaleVerdict(Liveness.DEAD, f"no subprocess_pid recorded ({rule}: stale)")
    if evidence is None or not evidence.exists or evidence.error:
        why = f"cannot probe: {evidence.error}" if evidence is not None and evidence.error else "not running"
        return StaleVerdict(Liveness.DEAD, f"pid {pid} {why} ({rule}: stale)")
    return StaleVerdict(Liveness.ALIVE, f"pid {pid} exists ({rule}: not stale)")


def study_quiet_threshold(record: ExperimentRecord) -> float:
    """Seconds a running study's manifest may stay unchanged before it counts as probably dead."""
    longest = 0.0
    for entry in record.processes:
        if entry.started_at is not None and entry.completed_at is not None:
            longest = max(longest, (entry.completed_at - entry.started_at).total_seconds())
    return max(STUDY_QUIET_MIN_S, STUDY_QUIET_ENTRY_FACTOR * longest)


def judge_study(
    record: ExperimentRecord, *, here: HostFacts, tool_processes: ToolProcesses | None, now: datetime
) -> StaleVerdict:
    """A running llenergymeasure study, which records no PID: probably dead, or unknown.

    Dead needs both: no llenergymeasure process of this user alive on this
    host, and a manifest unchanged past ``study_quiet_threshold``. It is never
    alive: a live ``llem`` process may be another study's.
    """
    threshold = study_quiet_threshold(record)
    quiet = _age(now, record.last_updated) if record.last_updated else 0.0
    unchanged = f"manifest unchanged for {duration(quiet)} (threshold {duration(threshold)})"
    caveat = "no PID is recorded: a run on another host writing this folder would not be seen"
    if tool_processes is None:
        return StaleVerdict(Liveness.UNKNOWN, "no PID recorded, and no process list to look in", (unchanged, caveat))
    found = tool_processes()
    if found:
        shown = "; ".join(f"pid {p.pid}: {p.command}" for p in found[:3])
        return StaleVerdict(
            Liveness.UNKNOWN,
            f"{len(found)} llenergymeasure process(es) of this user alive on {here.host}; "
            "which study each runs is not recorded",
            (shown, unchanged, caveat),
        )
    none_alive = f"no llenergymeasure process of this user alive on {here.host}"
    if quiet < threshold:
        recent = f"{none_alive}, but the manifest changed {duration(quiet)} ago (under the {duration(threshold)} threshold)"
        return StaleVerdict(Liveness.UNKNOWN, recent, (none_alive, unchanged, caveat))
    return StaleVerdict(Liveness.DEAD, f"probably dead: {none_alive}; {unchanged}", (none_alive, unchanged, caveat))


def judge_with(record: ExperimentRecord, probe: LivenessProbe, now: datetime) -> StaleVerdict:
    """``judge_record`` with everything ``probe`` can offer (its process list, where it has one)."""
    return judge_record(
        record,
        here=probe.host_facts(),
        probe=probe.probe,
        now=now,
        tool_processes=getattr(probe, "llenergymeasure_processes", None),
    )


def judge_record(
    record: ExperimentRecord,
    *,
    here: HostFacts,
    probe: Callable[[int], ProcessEvidence],
    now: datetime,
    tool_processes: ToolProcesses | None = None,
) -> StaleVerdict:
    """Verdict on all of an experiment's recorded owners.

    Alive if any owner is alive; dead if every owner is dead; unknown otherwise.
    """
    if record.format is StateFormat.LEM_STUDY:
        return judge_study(record, here=here, tool_processes=tool_processes, now=now)
    owners = ([record.owner] if record.owner else []) + list(record.workers)
    if not owners:
        evidence = probe(record.legacy_pid) if record.legacy_pid is not None else None
        return judge_legacy_pid(
            record.legacy_pid,
            evidence=evidence,
            started_at=record.started_at,
            last_updated=record.last_updated,
            now=now,
        )
    verdicts = [
        judge_owner(
            owner,
            here=here,
            evidence=probe(owner.pid) if owner.host == here.host else None,
            heartbeat_at=record.heartbeat_at,
            heartbeat_interval_s=record.heartbeat_interval_s,
            now=now,
        )
        for owner in owners
    ]
    return _combine(verdicts, tuple((o.pid, v.liveness) for o, v in zip(owners, verdicts)))


def is_stale(status: str, verdict: StaleVerdict | None) -> bool:
    """A running experiment whose owners are all dead: what the screen calls STALE."""
    return status == "running" and verdict is not None and verdict.liveness is Liveness.DEAD
