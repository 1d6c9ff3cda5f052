"""The input thread sleeps while no key comes, still tells a lone Escape from a sequence, and ends on exit."""

from __future__ import annotations

import asyncio
import os
import pty
import queue
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from textual import events

from app.input_driver import HANGUP_EXIT, QuietLinuxDriver, input_timeout
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


class _App:
    """What the driver asks of the app when the terminal goes: to exit, from its thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def exit(self, *args: object) -> None:
        raise AssertionError("the input thread must not call exit directly")

    def call_from_thread(self, callback: Callable[..., object], *args: object) -> None:
        self.calls.append((callback, *args))


def test_a_terminal_that_hangs_up_ends_the_dashboard_instead_of_spinning() -> None:
    """Textual's own loop kept selecting a descriptor at its end: a whole core, for ever."""
    read_fd, write_fd = os.pipe()
    driver = _driver()
    app = _App()
    driver._app = app  # type: ignore[assignment]
    driver.fileno = read_fd
    driver.process_message = lambda message: None  # type: ignore[method-assign]
    thread = threading.Thread(target=driver.run_input_thread, daemon=True)
    thread.start()
    try:
        _until(lambda: driver.input_waits == 1, "the first wait")
        os.close(write_fd)  # the other end goes: reads now say end of file
        thread.join(10)
        assert not thread.is_alive(), "the input thread went on after the end of its input"
        assert driver.terminal_gone and driver.input_waits == 1  # the wait that saw the end: no other
        assert app.calls == [(app.exit, None, HANGUP_EXIT)]
    finally:
        driver.close()
        os.close(read_fd)


def test_a_real_dashboard_whose_pty_closes_exits_with_the_hangup_code(tmp_path: Path) -> None:
    """The whole program on a pseudo-terminal, as over SSH; the pty's master end is then closed
    with no SIGHUP sent (the dashboard is not the terminal's session leader)."""
    master, slave = pty.openpty()
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, TERM="xterm-256color", PYTHONPATH=str(root))
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())", str(tmp_path)],
        stdin=slave, stdout=slave, stderr=slave, cwd=root, env=env, start_new_session=True,
    )
    os.close(slave)
    try:
        seen = b""
        while b"experiments" not in seen:  # the header has drawn
            ready, _, _ = select.select([master], [], [], 30)
            assert ready, "the dashboard drew nothing"
            seen += os.read(master, 65536)
        os.close(master)
        master = -1
        assert proc.wait(timeout=60) == HANGUP_EXIT
    finally:
        if master >= 0:
            os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
