"""Device output capture: what PyLabRobot machines print or log goes to the run's log, never the terminal.

The simulated ("chatterbox") backends print every command. While a
workcell's event loop runs, ``sys.stdout`` is replaced by a router that sends
what that loop's thread prints into a ``LogSink`` (whole lines, prefixed with
the device that printed them, known from a context variable); every other
thread prints as before. PyLabRobot's logger is routed the same way.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TextIO

log = logging.getLogger(__name__)

current_device: contextvars.ContextVar[str | None] = contextvars.ContextVar("expwatch_device", default=None)
quiet: contextvars.ContextVar[bool] = contextvars.ContextVar("expwatch_device_quiet", default=False)


LogTarget = TextIO | Callable[[str], object] | None
"""Where device output goes: a text stream, a function taking one line, or None (a logger)."""


class LogSink:
    """Whole lines, prefixed with the device that printed them, into the run's log."""

    def __init__(self, target: LogTarget) -> None:
        self._target = target
        self._partial: dict[str | None, str] = {}
        self._lock = threading.RLock()
        self._local = threading.local()

    @property
    def emitting(self) -> bool:
        """True on a thread that is inside this sink: what it prints then is the log itself."""
        return getattr(self._local, "emitting", False)

    def write(self, text: str) -> int:
        if quiet.get():
            return len(text)
        device = current_device.get()
        with self._lock:
            buffered = self._partial.pop(device, "") + text
            *lines, rest = buffered.split("\n")
            if rest:
                self._partial[device] = rest
            for line in lines:
                self._emit(device, line)
        return len(text)

    def line(self, device: str | None, text: str) -> None:
        with self._lock:
            self._emit(device, text)

    def _emit(self, device: str | None, line: str) -> None:
        text = f"[{device}] {line}" if device else f"[devices] {line}"
        target = self._target
        self._local.emitting = True
        try:
            if target is None:
                log.info("%s", text)
            elif callable(target) and not hasattr(target, "write"):
                target(text)
            else:
                target.write(text + "\n")  # type: ignore[union-attr]
                target.flush()  # type: ignore[union-attr]
        except (OSError, ValueError):
            log.info("%s", text)
        finally:
            self._local.emitting = False

    def flush(self) -> None:
        with self._lock:
            for device, rest in list(self._partial.items()):
                self._emit(device, rest)
            self._partial.clear()


class _ThreadRoutedStdout:
    """``sys.stdout`` while device loops run: their threads print into a log, others as before."""

    def __init__(self, fallback: TextIO) -> None:
        self.fallback = fallback
        self.routes: dict[int, LogSink] = {}

    def write(self, text: str) -> int:
        sink = self.routes.get(threading.get_ident())
        if sink is not None and not sink.emitting:
            return sink.write(text)
        return self.fallback.write(text)

    def flush(self) -> None:
        sink = self.routes.get(threading.get_ident())
        if sink is None or sink.emitting:
            self.fallback.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


_route_lock = threading.Lock()


def route_stdout(thread_id: int, sink: LogSink) -> None:
    with _route_lock:
        current = sys.stdout
        if not isinstance(current, _ThreadRoutedStdout):
            current = _ThreadRoutedStdout(current)
            sys.stdout = current
        current.routes[thread_id] = sink


def unroute_stdout(thread_id: int) -> None:
    with _route_lock:
        current = sys.stdout
        if isinstance(current, _ThreadRoutedStdout):
            current.routes.pop(thread_id, None)
            if not current.routes:
                sys.stdout = current.fallback


class SinkHandler(logging.Handler):
    def __init__(self, sink: LogSink) -> None:
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if quiet.get() or self.sink.emitting:
            return
        try:
            self.sink.line(current_device.get(), f"{record.levelname.lower()}: {record.getMessage()}")
        except Exception:
            self.handleError(record)


def capture_device_output(log_stream: LogTarget) -> contextlib.AbstractContextManager[None]:
    """Route what this thread prints (and pylabrobot logs) into ``log_stream`` for the block."""
    return capture_into(LogSink(log_stream))


@contextlib.contextmanager
def capture_into(sink: LogSink) -> Iterator[None]:
    """``capture_device_output`` for a sink the caller keeps (a session's, shared with its loop thread)."""
    handler = SinkHandler(sink)
    thread_id = threading.get_ident()
    route_stdout(thread_id, sink)
    logging.getLogger("pylabrobot").addHandler(handler)
    try:
        yield
    finally:
        sink.flush()
        unroute_stdout(thread_id)
        logging.getLogger("pylabrobot").removeHandler(handler)
