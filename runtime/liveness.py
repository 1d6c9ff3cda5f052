"""The liveness probe: facts about this host and about one PID on it.

Start times come from ``/proc/<pid>/stat`` (field 22, clock ticks since boot,
exact) where there is a /proc, and from psutil's ``create_time`` otherwise.
The verdict itself is ``state.verdict``; this module only gathers evidence.
psutil loads on the first probe, not with the dashboard (it is not needed
before the first frame).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from state.verdict import HostFacts, ProcessEvidence, ToolProcess

if TYPE_CHECKING:  # a pydantic model: loaded by the runner that records an owner, not by a reader
    from state.native import OwnerIdentity

_PROC = Path("/proc")


@functools.cache
def boot_id() -> str | None:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        import psutil

        try:
            return f"boot@{psutil.boot_time():.0f}"
        except Exception:
            return None


@functools.cache
def pid_namespace() -> str | None:
    """This process's PID namespace (``pid:[4026531836]``), None where there is none to read.

    Two containers can share a hostname and a boot id while each numbers its own processes:
    a PID is only comparable inside one namespace.
    """
    try:
        return os.readlink(_PROC / "self/ns/pid") or None
    except OSError:
        return None


def host_facts() -> HostFacts:
    # os.uname().nodename is what socket.gethostname() returns, without loading socket (4 ms of `list`).
    return HostFacts(host=os.uname().nodename, boot_id=boot_id())


def _stat_fields(pid: int) -> tuple[str, int] | None:
    """(state letter, start ticks) from /proc/<pid>/stat, or None if there is no such process."""
    try:
        raw = (_PROC / str(pid) / "stat").read_bytes()
    except FileNotFoundError:
        return None
    except ProcessLookupError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    rest = raw[raw.rindex(b")") + 2 :].split()
    return rest[0].decode(), int(rest[19])


def probe(pid: int) -> ProcessEvidence:
    """Evidence about ``pid`` on this host. Never raises for a missing process."""
    import psutil

    if pid <= 0:
        return ProcessEvidence(pid=pid, exists=False)
    if _PROC.joinpath("self/stat").exists():
        try:
            fields = _stat_fields(pid)
        except (OSError, ValueError, IndexError) as exc:
            return ProcessEvidence(pid=pid, exists=False, error=str(exc))
        if fields is None:
            return ProcessEvidence(pid=pid, exists=False)
        letter, ticks = fields
        try:
            start_time = psutil.Process(pid).create_time()
        except psutil.Error:
            start_time = None
        return ProcessEvidence(
            pid=pid, exists=True, start_ticks=ticks, start_time=start_time, zombie=letter in ("Z", "X")
        )
    try:
        proc = psutil.Process(pid)
        return ProcessEvidence(
            pid=pid,
            exists=True,
            start_time=proc.create_time(),
            zombie=proc.status() == psutil.STATUS_ZOMBIE,
        )
    except psutil.NoSuchProcess:
        return ProcessEvidence(pid=pid, exists=False)
    except psutil.AccessDenied as exc:
        return ProcessEvidence(pid=pid, exists=True, error=f"access denied: {exc}")


def identity_of(pid: int | None = None, *, role: str = "coordinator", process_index: int | None = None) -> OwnerIdentity:
    """The owner identity to record for ``pid`` (default: this process)."""
    from state.native import OwnerIdentity

    pid = os.getpid() if pid is None else pid
    evidence = probe(pid)
    facts = host_facts()
    return OwnerIdentity(
        host=facts.host,
        boot_id=facts.boot_id,
        pid=pid,
        start_time=evidence.start_time,
        start_ticks=evidence.start_ticks,
        role=role,
        process_index=process_index,
    )


#: Program names of llenergymeasure's command line (0.7.0 is ``llem``; the 6-state versions ``lem``).
LEM_PROGRAMS = frozenset({"llem", "lem"})


def _is_llenergymeasure(argv: list[str]) -> bool:
    """``llem ...``, ``python .../bin/llem ...``, ``python -m llenergymeasure...``."""
    for arg in argv[:3]:
        if os.path.basename(arg) in LEM_PROGRAMS or "llenergymeasure" in arg:
            return True
    return False


def llenergymeasure_processes() -> tuple[ToolProcess, ...]:
    """This user's llenergymeasure processes on this host (a study records no PID to probe)."""
    import psutil

    uid = os.getuid()
    me = os.getpid()
    found = []
    for proc in psutil.process_iter(["pid", "uids", "cmdline"]):
        info = proc.info
        uids, argv = info.get("uids"), info.get("cmdline")
        if info["pid"] == me or not argv or uids is None or uids.real != uid:
            continue
        if _is_llenergymeasure(argv):
            found.append(ToolProcess(info["pid"], " ".join(argv)[:200]))
    return tuple(found)


class LocalProbe:
    """``state.verdict.LivenessProbe`` for this host."""

    def llenergymeasure_processes(self) -> tuple[ToolProcess, ...]:
        return llenergymeasure_processes()

    def host_facts(self) -> HostFacts:
        return host_facts()

    def probe(self, pid: int) -> ProcessEvidence:
        return probe(pid)
