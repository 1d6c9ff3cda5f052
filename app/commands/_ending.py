"""SIGTERM and SIGHUP end a demo session as q does: the dashboard exits, then cleanup runs whole.

A demo starts processes (runners, agents, a hub) that must not outlive it,
whether the session ends by q, Ctrl+C, ``kill`` or a closed terminal. Only
SIGKILL, which nothing can catch, leaves them behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from types import TracebackType
from typing import Any

ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class _Signalled(Exception):
    """Raised by the handler outside the dashboard: the wait (or the start) stops, cleanup runs."""


class SignalEnding:
    """Installed for the session (``with``); ``run`` shows the dashboard, ``shielded`` guards the cleanup."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._dashboard: Any = None
        self._previous: dict[int, Any] = {}
        self._deferring = False

    def _ending(self, signum: int, frame: object) -> None:
        self.received.append(signum)
        if self._deferring:
            return
        if self._dashboard is not None:
            with contextlib.suppress(RuntimeError):
                # Signals run on the main thread, where the dashboard's event loop runs.
                asyncio.get_running_loop().call_soon_threadsafe(self._dashboard.exit)
                return
        raise _Signalled(signum)

    def __enter__(self) -> SignalEnding:
        self._previous = {s: signal.signal(s, self._ending) for s in ENDING_SIGNALS}
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return kind is _Signalled

    def run(self, app: Any) -> None:
        """Run the dashboard; an ending signal makes it exit as q would."""
        self._dashboard = app
        try:
            app.run()
        finally:
            self._dashboard = None

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """While starting processes: a signal is noted and ends the session once the block is done,
        so no process is started without being recorded for the cleanup."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self.received:
            raise _Signalled(self.received[0])

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
