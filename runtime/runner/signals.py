"""Signals as messages: SIGINT, SIGTERM and SIGHUP wake the coordinator's select loop instead of raising.

The handlers only queue the signal and, through ``set_wakeup_fd``, write to a
socket the loop selects on; the loop decides what a signal means.
Installed only on the main thread (elsewhere the wake-up socket still exists).
"""

from __future__ import annotations

import contextlib
import selectors
import signal
import socket
import threading
from collections import deque
from typing import Any

SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


class SignalInbox:
    def __init__(self) -> None:
        self._signals: deque[int] = deque()
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._old_handlers: dict[int, Any] = {}
        self._old_wakeup_fd: int | None = None

    def install(self, sel: selectors.BaseSelector) -> None:
        """Register the wake-up socket with ``sel`` (its key's data is None)."""
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        if threading.current_thread() is not threading.main_thread():
            return
        self._old_wakeup_fd = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        for signum in SIGNAL_NAMES:
            self._old_handlers[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals.append(signum)

    def restore(self) -> None:
        for signum, handler in self._old_handlers.items():
            with contextlib.suppress(Exception):
                signal.signal(signum, handler)
        if self._old_wakeup_fd is not None:
            with contextlib.suppress(Exception):
                signal.set_wakeup_fd(self._old_wakeup_fd)
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    def take(self) -> list[int]:
        """The signals received since the last call, oldest first; drains the wake-up socket."""
        if self._wake_r is not None:
            with contextlib.suppress(OSError):
                while self._wake_r.recv(4096):
                    pass
        taken = []
        while self._signals:
            taken.append(self._signals.popleft())
        return taken
