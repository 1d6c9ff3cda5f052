"""The input thread sleeps while no key comes, still tells a lone Escape from a sequence, and ends on exit."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import threading
from collections.abc import Callable

from textual import events

from app.input_driver import QuietLinuxDriver, input_timeout
from textual._xterm_parser import XTermParser


def _until(predicate: Callable[[], bool], what: str) -> None:
    done = threading.Event()
    for _ in range(5000):
        if predicate():
            return
        done.wait(0.002)
    raise AssertionError(f"never: {what}")


def _driver() -> QuietLinuxDriver:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTSTP, signal.SIGCONT)}

    async def make() -> QuietLinuxDriver:
        return QuietLinuxDriver(app=object())  # type: ignore[arg-type]

    try:
        return asyncio.run(make())
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_the_input_thread_waits_without_a_timeout_between_keys() -> None:
    read_fd, write_fd = os.pipe()
    driver = _driver()
    driver.fileno = read_fd
    keys: queue.Queue[events.Key] = queue.Queue()
    driver.process_message = lambda message: keys.put(message) if isinstance(message, events.Key) else None  # type: ignore[method-assign]
    thread = threading.Thread(target=driver.run_input_thread, daemon=True)
    thread.start()
    try:
        _until(lambda: driver.input_waits == 1, "the first wait")
        assert driver.last_timeout is None  # idle: no wake until a key or the exit

        os.write(write_fd, b"q")
        assert keys.get(timeout=10).key == "q"
        _until(lambda: driver.input_waits == 2, "the wait after the key")
        assert driver.last_timeout is None

        # A lone Escape: the parser waits for the rest of a sequence until its delay has passed.
        os.write(write_fd, b"\x1b")
        assert keys.get(timeout=10).key == "escape"
        _until(lambda: driver.last_timeout is None, "sleeping again after the escape")
        # The key's wake, the escape delay's (once, maybe twice at a deadline's edge), then asleep.
        assert 4 <= driver.input_waits <= 5
    finally:
        driver.exit_event.set()
        thread.join(10)
        assert not thread.is_alive(), "the exit did not wake the input thread"
        driver.close()
        os.close(read_fd)
        os.close(write_fd)


def test_the_timeout_is_the_parsers_pending_deadline() -> None:
    parser = XTermParser()
    assert input_timeout(parser) is None
    list(parser.feed("\x1b"))
    pending = input_timeout(parser)
    assert pending is not None and 0.0 <= pending <= 1.0
    assert input_timeout(object()) == 0.1  # a parser that no longer says: Textual's own step
