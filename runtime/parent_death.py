"""Children that end with the process that started them, even when it is SIGKILLed (Linux).

A demo's runners, agents and hub must not outlive it. Every orderly end stops them,
but SIGKILL runs no code; Linux can still signal a child when its parent dies
(``prctl(PR_SET_PDEATHSIG)``). The child must ask for it itself, between fork and
exec: ``preexec_fn`` would run Python there, unsafe in a parent with threads (the
demo's reapers), so ``guarded`` puts a small exec wrapper in front of the command
instead. Run by its path (``-I -S``: stdlib only, nothing of the project imported),
it asks for the signal, makes sure its parent is still the one that started it (it
may have died in between: then nothing runs), and execs the command in its own
place, so the pid the parent recorded stays the command's.

The signal comes when the parent *thread* that started the child ends: start such
children from a thread that lives as long as the parent (its main thread).
Elsewhere (no ``prctl``), ``guarded`` returns the command as it is.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
#: The wrapper's exit status when its parent died before the command could start, or it could not exec.
EXIT_PARENT_GONE = 1
EXIT_NOT_RUN = 127


def set_parent_death_signal(signum: int) -> bool:
    """Ask Linux for ``signum`` when this process's parent dies; False where that cannot be had."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def guarded(argv: list[str], signum: int = signal.SIGTERM) -> list[str]:
    """``argv`` run so that it gets ``signum`` when this process dies (Linux); ``argv`` itself elsewhere."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), str(os.getpid()), str(int(signum)), "--", *argv]


def _main(args: list[str]) -> int:
    parent, signum, separator, *command = args
    if separator != "--" or not command:
        print("usage: parent_death.py PARENT_PID SIGNUM -- COMMAND...", file=sys.stderr)
        return EXIT_NOT_RUN
    set_parent_death_signal(int(signum))
    if os.getppid() != int(parent):
        return EXIT_PARENT_GONE
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"cannot run {command[0]}: {exc.strerror or exc}", file=sys.stderr)
    return EXIT_NOT_RUN


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
