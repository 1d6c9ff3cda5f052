"""Who holds a host's hub lease, and whether that agent is proven gone.

An agent killed without releasing its lease (SIGKILL, the OOM killer, a crash) leaves it
live until its TTL runs out, and the agent restarted in its place (by hand, or systemd's
``Restart=on-failure``) would be refused until then. So a lease records its holder the
way the runner records an experiment's owner: hostname, boot id, PID namespace, PID and
the process's start time and user. A new agent on the same machine can then prove the holder gone
and take the lease over (``Hub.take_over_lease``: only if the value is still exactly the
dead holder's).

Only proof counts. A holder on another machine, another boot or in another PID namespace
(a container sharing the hostname), of another user (whose processes this one may not
see: ``hidepid``), a lease without these facts (an older agent's) or a
process that cannot be probed is never judged dead here: that lease lapses on its own.
The judgement is a pure function of the lease, this process's own facts and a probe.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from runtime.liveness import host_facts, pid_namespace, probe
from state.hub.schema import LeaseHolder, parse_holder
from state.verdict import START_TIME_TOLERANCE_S, Liveness, ProcessEvidence, StaleVerdict


def this_holder() -> LeaseHolder:
    """The facts a lease records of this process, beside the agent's instance."""
    pid = os.getpid()
    facts, evidence = host_facts(), probe(pid)
    return LeaseHolder(
        pid=pid, hostname=facts.host, boot_id=facts.boot_id, pid_ns=pid_namespace(),
        start_ticks=evidence.start_ticks, start_time=evidence.start_time, uid=os.getuid(),
    )


def _unknown(reason: str) -> StaleVerdict:
    return StaleVerdict(Liveness.UNKNOWN, reason)


def _not_comparable(holder: LeaseHolder, me: LeaseHolder) -> str | None:
    """Why the holder's PID cannot be judged by this process (None: it can)."""
    if holder.hostname is None:
        return "the lease records no hostname"
    if holder.hostname != me.hostname:
        return f"that is not this host ({me.hostname})"
    if holder.boot_id is None or holder.pid_ns is None or holder.uid is None:
        return "the lease records no boot id, PID namespace or user (an older agent took it)"
    if me.boot_id is None or me.pid_ns is None or me.uid is None:
        return "this host's boot id or this process's PID namespace cannot be read"
    if holder.boot_id != me.boot_id:
        return "it was taken in another boot, or on another machine of that name (boot id differs)"
    if holder.pid_ns != me.pid_ns:
        return "it was taken in another PID namespace (another container?), where its pid means another process"
    if holder.uid != me.uid:
        return f"it was taken by another user (uid {holder.uid}), whose processes this one may not see"
    return None


def _started_after(holder: LeaseHolder, evidence: ProcessEvidence) -> bool | None:
    """Whether the process now at the holder's PID started after the holder did (None: cannot tell)."""
    if holder.start_ticks is not None and evidence.start_ticks is not None:
        return None if evidence.start_ticks < holder.start_ticks else evidence.start_ticks > holder.start_ticks
    if holder.start_time is not None and evidence.start_time is not None:
        if abs(evidence.start_time - holder.start_time) <= START_TIME_TOLERANCE_S:
            return False
        return True if evidence.start_time > holder.start_time else None
    return None


def judge_holder(holder: LeaseHolder | None, *, me: LeaseHolder, probe: Callable[[int], ProcessEvidence]) -> StaleVerdict:
    """Dead only when the holder was ``me``'s machine's, in this boot, PID namespace and user, and its process is gone:
    no such PID, a zombie, or a PID now owned by a process started after the holder. Alive (proven) when the
    process at that PID started exactly when the holder did. Unknown for everything else, saying why."""
    if holder is None:
        return _unknown("the lease's value is not a JSON object")
    if holder.pid is None or holder.pid <= 0:
        return _unknown("the lease names no pid")
    elsewhere = _not_comparable(holder, me)
    if elsewhere is not None:
        return _unknown(elsewhere)
    who = f"pid {holder.pid}"
    if holder.start_ticks is None and holder.start_time is None:
        return _unknown(f"the lease records no start time for {who}")
    evidence = probe(holder.pid)
    if not evidence.exists:
        if evidence.error:
            return _unknown(f"{who} cannot be probed ({evidence.error})")
        return StaleVerdict(Liveness.DEAD, f"{who}: no such process")
    if evidence.zombie:
        return StaleVerdict(Liveness.DEAD, f"{who}: a zombie (exited, not yet reaped)")
    after = _started_after(holder, evidence)
    if after is None:
        return _unknown(f"{who} exists, and its start time cannot be compared with the lease's")
    if after:
        return StaleVerdict(Liveness.DEAD, f"{who}: reused by a process started after the lease's holder")
    return StaleVerdict(Liveness.ALIVE, f"{who} is running (its start time is the lease's)", proven=True)


__all__ = ["LeaseHolder", "judge_holder", "parse_holder", "this_holder"]
