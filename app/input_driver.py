"""Textual's Linux driver, with an input thread that sleeps until a key (or the exit) comes.

Textual's input thread asks ``select`` for input every 0.1 s whether or not anything is
pending, so that a lone Escape can be told from the start of a key sequence once its
delay has passed: ten wakes a second, each taking the GIL. On an idle dashboard over
10,000 experiments that thread was 40 of the process's 103 ms of CPU in 20 s (per-thread
``/proc/<pid>/task/*/schedstat``; a bare Textual app pays the same). Here it waits with
no timeout unless the parser is waiting for the rest of a sequence, and then only until
that deadline; the exit wakes it through a pipe.
"""

from __future__ import annotations

import os
import selectors
import signal
import threading
from codecs import getincrementaldecoder

from textual._parser import ParseError
from textual._time import get_time
from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver

#: The exit code when the terminal goes away: what a SIGHUP gives (128 + 1).
HANGUP_EXIT = 128 + signal.SIGHUP
#: Textual's own step, used where its parser no longer says when it waits.
POLL_SECONDS = 0.1
_UNKNOWN = object()


class _WakingEvent(threading.Event):
    """The driver's exit event: setting it also wakes the input thread's ``select``."""

    def __init__(self) -> None:
        super().__init__()
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self._write_fd, False)

    def set(self) -> None:
        super().set()
        try:
            os.write(self._write_fd, b"x")
        except (BlockingIOError, OSError):
            pass  # full (already woken) or closed: either way nothing waits on it

    def clear(self) -> None:
        super().clear()
        self.drain()

    def drain(self) -> None:
        try:
            while os.read(self.read_fd, 512):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        for fd in (self.read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def input_timeout(parser: object) -> float | None:
    """How long the input thread may sleep: until the parser's pending deadline (a lone Escape
    becomes a key once its delay passes), or for ever when nothing is pending."""
    deadline = getattr(parser, "_timeout_time", _UNKNOWN)
    if deadline is _UNKNOWN:
        return POLL_SECONDS
    if deadline is None:
        return None
    return max(0.0, deadline - get_time())


class QuietLinuxDriver(LinuxDriver):
    """LinuxDriver whose input thread wakes only for input, a pending sequence's deadline, or the exit."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.exit_event = _WakingEvent()
        #: How many times the input thread asked ``select`` for input, and with what timeout the
        #: last time (None: until input or the exit): tests count wakes, never time them.
        self.input_waits = 0
        self.last_timeout: float | None = None
        self.terminal_gone = False

    def close(self) -> None:
        super().close()
        self.exit_event.close()

    def _terminal_gone(self) -> None:
        """The terminal hung up (an SSH connection dropped without a SIGHUP reaching us, a closed
        pty): nothing can be shown or typed any more, so the dashboard ends, with 128 + SIGHUP.
        Textual's loop went on selecting a descriptor at its end: a core at 90-100 % for ever."""
        self.terminal_gone = True
        try:
            self._app.call_from_thread(self._app.exit, None, HANGUP_EXIT)
        except RuntimeError:
            pass  # the app is already ending

    def run_input_thread(self) -> None:
        """Textual's loop (read, feed the parser, tick its timeouts), with the timeout it needs."""
        wake = self.exit_event
        fileno = self.fileno
        selector = selectors.DefaultSelector()
        selector.register(fileno, selectors.EVENT_READ)
        selector.register(wake.read_fd, selectors.EVENT_READ)
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode

        try:
            while not wake.is_set():
                self.input_waits += 1
                self.last_timeout = timeout = input_timeout(parser)
                ready = selector.select(timeout)
                if any(key.fd == fileno for key, _mask in ready):
                    try:
                        raw = os.read(fileno, 1024 * 4)
                    except OSError:  # EIO: the terminal is gone
                        raw = b""
                    if not raw:
                        self._terminal_gone()
                        break
                    data = decode(raw)
                    if data:
                        for message in parser.feed(data):
                            self.process_message(message)
                for message in parser.tick():
                    self.process_message(message)
        finally:
            selector.close()
            try:
                for _ in parser.feed(""):
                    pass
            except (EOFError, ParseError):
                pass


__all__ = ["HANGUP_EXIT", "QuietLinuxDriver", "input_timeout"]
