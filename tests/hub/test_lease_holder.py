"""The judgement behind a lease takeover: dead only on proof from this machine, over every evidence combination."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from runtime.liveness import probe
from runtime.lease_holder import LeaseHolder, judge_holder, parse_holder, this_holder
from state.verdict import START_TIME_TOLERANCE_S, Liveness, ProcessEvidence
from tests.runtime.helpers import wait_for

ME = LeaseHolder(pid=100, hostname="gpu1", boot_id="boot-a", pid_ns="pid:[1]", start_ticks=900, start_time=990.0, uid=1000)

holders = st.builds(
    LeaseHolder,
    pid=st.sampled_from([None, -1, 0, 4343]),
    hostname=st.sampled_from([None, "gpu1", "gpu2"]),
    boot_id=st.sampled_from([None, "boot-a", "boot-b"]),
    pid_ns=st.sampled_from([None, "pid:[1]", "pid:[2]"]),
    start_ticks=st.sampled_from([None, 500]),
    start_time=st.sampled_from([None, 1000.0]),
    uid=st.sampled_from([None, 1000, 0]),
)
evidences = st.builds(
    ProcessEvidence,
    pid=st.just(4343),
    exists=st.booleans(),
    start_time=st.sampled_from([None, 990.0, 1000.0, 1000.0 + START_TIME_TOLERANCE_S / 2, 1001.0]),
    start_ticks=st.sampled_from([None, 400, 500, 600]),
    zombie=st.booleans(),
    error=st.sampled_from([None, "access denied"]),
)
mes = st.builds(
    dataclasses.replace, st.just(ME), boot_id=st.sampled_from([None, "boot-a"]), pid_ns=st.sampled_from([None, "pid:[1]"])
)


def _expected(holder: LeaseHolder, me: LeaseHolder, evidence: ProcessEvidence) -> Liveness:
    """The rule, stated plainly: same machine, boot, namespace and user, a recorded start, then the process's fate."""
    facts = ("boot_id", "pid_ns", "uid")
    same = (
        holder.pid is not None and holder.pid > 0 and holder.hostname == me.hostname
        and all(getattr(holder, f) is not None and getattr(holder, f) == getattr(me, f) for f in facts)
    )
    if not same or (holder.start_ticks is None and holder.start_time is None):
        return Liveness.UNKNOWN
    if not evidence.exists:
        return Liveness.UNKNOWN if evidence.error else Liveness.DEAD
    if evidence.zombie:
        return Liveness.DEAD
    if holder.start_ticks is not None and evidence.start_ticks is not None:
        delta = evidence.start_ticks - holder.start_ticks
    elif holder.start_time is not None and evidence.start_time is not None:
        delta = evidence.start_time - holder.start_time
        delta = 0 if abs(delta) <= START_TIME_TOLERANCE_S else delta
    else:
        return Liveness.UNKNOWN
    return Liveness.DEAD if delta > 0 else Liveness.ALIVE if delta == 0 else Liveness.UNKNOWN


@given(holder=holders, me=mes, evidence=evidences)
def test_dead_only_with_proof_from_this_machine(holder: LeaseHolder, me: LeaseHolder, evidence: ProcessEvidence):
    probed: list[int] = []

    def probe_(pid: int) -> ProcessEvidence:
        probed.append(pid)
        return evidence

    verdict = judge_holder(holder, me=me, probe=probe_)
    assert verdict.liveness is _expected(holder, me, evidence), verdict.reason
    assert verdict.reason and "\n" not in verdict.reason
    assert verdict.proven == verdict.is_alive
    if holder.hostname != me.hostname or holder.boot_id != me.boot_id or holder.pid_ns != me.pid_ns:
        assert probed == [], "a PID of another machine, boot or namespace is never probed here"


def test_refusals_say_why():
    gone = ProcessEvidence(pid=4343, exists=False)
    dead = dataclasses.replace(ME, pid=4343, start_ticks=500)

    def reason(holder: LeaseHolder | None, me: LeaseHolder = ME) -> str:
        verdict = judge_holder(holder, me=me, probe=lambda pid: gone)
        assert verdict.liveness is Liveness.UNKNOWN
        return verdict.reason

    assert judge_holder(dead, me=ME, probe=lambda pid: gone).reason == "pid 4343: no such process"
    assert reason(dataclasses.replace(dead, hostname="gpu2")) == "that is not this host (gpu1)"
    assert "boot id differs" in reason(dataclasses.replace(dead, boot_id="boot-b"))
    assert "another PID namespace" in reason(dataclasses.replace(dead, pid_ns="pid:[2]"))
    assert "another user (uid 0)" in reason(dataclasses.replace(dead, uid=0))
    assert "an older agent" in reason(LeaseHolder(pid=4343, hostname="gpu1"))
    assert "cannot be read" in reason(dead, dataclasses.replace(ME, boot_id=None))
    assert "no start time" in reason(dataclasses.replace(dead, start_ticks=None, start_time=None))
    assert "not a JSON object" in reason(None)


def test_lease_values_parse_or_read_as_absent():
    full = {"instance": "x", **this_holder().as_json(), "sources": ["lab"]}
    assert parse_holder(json.dumps(full).encode()) == this_holder()
    assert parse_holder(b'{"pid": "12", "start_ticks": true, "start_time": 5, "hostname": 3}') == LeaseHolder(start_time=5.0)
    for raw in (None, b"", b"not json", b"[1]", b"[" * 100_000, b'{"pid": 1, "x": "' + b"y" * 20_000 + b'"}'):
        assert parse_holder(raw) is None


def _judge_real(holder: LeaseHolder) -> Liveness:
    return judge_holder(holder, me=this_holder(), probe=probe).liveness


def test_real_processes_alive_reused_zombie_and_gone():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        facts = probe(child.pid)
        holder = dataclasses.replace(this_holder(), pid=child.pid, start_ticks=facts.start_ticks, start_time=facts.start_time)
        assert _judge_real(holder) is Liveness.ALIVE, "the process that took the lease, still running"
        assert _judge_real(dataclasses.replace(holder, start_ticks=facts.start_ticks - 1)) is Liveness.DEAD, "its PID reused"
        assert _judge_real(dataclasses.replace(holder, start_ticks=facts.start_ticks + 1)) is Liveness.UNKNOWN
        child.stdin.close()
        wait_for(lambda: probe(child.pid).zombie, 20, "the child to exit, unreaped")
        assert _judge_real(holder) is Liveness.DEAD, "a zombie"
    finally:
        child.kill()
        child.wait(timeout=10)
    assert _judge_real(holder) is Liveness.DEAD, "reaped: no such process"
