"""SIGTERM and SIGHUP end a demo session as q does: the dashboard exits, then cleanup runs whole.

A demo starts processes (runners, agents, a hub) that must not outlive it,
whether the session ends by q, Ctrl+C, ``kill`` or a closed terminal. SIGKILL,
which nothing can catch, runs none of this: there the children's parent-death
signal (``runtime.parent_death``, Linux) stops them.

The handler only notes the signal (and asks a running dashboard to exit); it
never raises. An exception thrown from a signal handler surfaces at whatever
bytecode the main thread is on, the middle of an import included, where it can
leave the interpreter's import lock held: any later import on another thread
then waits forever (a fleet demo signalled while it imported the dashboard once
never exited). The session's steps ask ``ended`` instead, and its one long
wait, ``wait``, is cut short by the signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class SignalEnding:
    """Installed for the session (``with``); ``wait`` and ``run`` end early on a signal, ``shielded`` guards the cleanup."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._dashboard: Any = None
        self._previous: dict[int, Any] = {}
        self._previous_wakeup = -1
        self._wake: tuple[int, int] | None = None

    def _ending(self, signum: int, frame: object) -> None:
        self.received.append(signum)
        if self._dashboard is not None:
            try:
                # Signals run on the main thread, where the dashboard's event loop runs.
                asyncio.get_running_loop().call_soon_threadsafe(self._dashboard.exit)
            except RuntimeError:  # its loop is not running yet: it exits as soon as it starts
                self._dashboard.exit()

    def __enter__(self) -> SignalEnding:
        self._wake = os.pipe()
        for fd in self._wake:
            os.set_blocking(fd, False)
        # The interpreter writes to this pipe whichever thread the kernel hands the signal to,
        # so ``wait`` wakes even when the main thread is not the one interrupted.
        self._previous_wakeup = signal.set_wakeup_fd(self._wake[1], warn_on_full_buffer=False)
        self._previous = {s: signal.signal(s, self._ending) for s in ENDING_SIGNALS}
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        signal.set_wakeup_fd(self._previous_wakeup)
        if self._wake is not None:
            for fd in self._wake:
                os.close(fd)
            self._wake = None

    @property
    def ended(self) -> bool:
        """An ending signal came: the session stops at its next step."""
        return bool(self.received)

    def wait(self, seconds: float) -> bool:
        """Wait ``seconds`` or until an ending signal comes, whichever is first; True when a signal ended it."""
        assert self._wake is not None, "wait inside the with block"
        deadline = time.monotonic() + max(0.0, seconds)
        while not self.received:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([self._wake[0]], [], [], left)
            if readable:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake[0], 512):
                        pass
        return True

    def run(self, app: Any) -> None:
        """Run the dashboard, unless a signal came first; an ending signal makes it exit as q would."""
        self._dashboard = app
        try:
            if not self.received:
                app.run()
        finally:
            self._dashboard = None

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """While cleaning up, a second signal or Ctrl+C must not leave half of the processes behind."""
        guarded = (*ENDING_SIGNALS, signal.SIGINT)
        before = {s: signal.signal(s, signal.SIG_IGN) for s in guarded}
        try:
            yield
        finally:
            for s, handler in before.items():
                signal.signal(s, handler)

    @property
    def exit_code(self) -> int:
        """0 for an ordinary end; 128 + the signal's number when one ended the session, as a shell reports it."""
        return 128 + self.received[0] if self.received else 0
