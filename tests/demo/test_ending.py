"""``SignalEnding``: a demo session's SIGTERM or SIGHUP is noted, never raised, and cuts the session's wait short.

These run on pytest's main thread, where Python runs signal handlers. A wait that a
signal failed to cut short would run to its end and return False: none of these
tests measures a time.
"""

from __future__ import annotations

import os
import select
import signal
import threading
from collections.abc import Callable

import pytest

from app.commands import _ending
from app.commands._ending import SignalEnding

#: Longer than any of these tests should take; reached only when the signal is missed.
NEVER_S = 60.0


def test_a_signal_in_the_middle_of_work_is_noted_and_raises_nothing():
    # An exception raised by the handler could surface inside an import and leave its lock held.
    with SignalEnding() as ending:
        os.kill(os.getpid(), signal.SIGTERM)
        total = sum(range(1000))  # the work goes on
        assert ending.ended and ending.received == [signal.SIGTERM]
    assert total == 499500
    assert ending.exit_code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is not ending._ending, "the handler before the session is back"


class _SelectSpy:
    """Stands in for the ``select`` module in ``_ending``: notes that the wait sleeps, and what woke it."""

    def __init__(self) -> None:
        self.sleeping = threading.Event()
        self.woken_by: list[list[int]] = []

    def select(self, rlist: list[int], wlist: list[int], xlist: list[int], timeout: float) -> tuple[list[int], list[int], list[int]]:
        self.sleeping.set()
        found = select.select(rlist, wlist, xlist, timeout)
        self.woken_by.append(found[0])
        return found


def _wait_signalled_by(send: Callable[[], None], monkeypatch: pytest.MonkeyPatch) -> tuple[SignalEnding, _SelectSpy]:
    """``wait`` on the main thread while another thread, once the wait sleeps, calls ``send``."""
    spy = _SelectSpy()
    monkeypatch.setattr(_ending, "select", spy)

    def sender() -> None:
        if spy.sleeping.wait(NEVER_S):
            send()

    with SignalEnding() as ending:
        thread = threading.Thread(target=sender)
        thread.start()
        ended = ending.wait(NEVER_S)
        thread.join()
    assert ended is True
    return ending, spy


def test_the_wait_ends_when_a_signal_reaches_the_process(monkeypatch: pytest.MonkeyPatch):
    ending, spy = _wait_signalled_by(lambda: os.kill(os.getpid(), signal.SIGHUP), monkeypatch)
    assert ending.exit_code == 128 + signal.SIGHUP
    assert spy.woken_by and all(spy.woken_by), "woken by the signal, not by the end of the wait"


def test_the_wait_ends_when_the_kernel_hands_the_signal_to_another_thread(monkeypatch: pytest.MonkeyPatch):
    # The main thread's select is not interrupted then: only the wake-up fd, written on the other thread, wakes it.
    ending, spy = _wait_signalled_by(lambda: signal.pthread_kill(threading.get_ident(), signal.SIGTERM), monkeypatch)
    assert ending.received == [signal.SIGTERM]
    assert spy.woken_by and all(spy.woken_by), "woken by the signal, not by the end of the wait"


def test_the_wait_runs_out_without_a_signal():
    with SignalEnding() as ending:
        assert ending.wait(0.0) is False
        assert not ending.ended
    assert ending.exit_code == 0


class _Dashboard:
    def __init__(self, signal_while_starting: bool = False) -> None:
        self.signal_while_starting = signal_while_starting
        self.ran = False
        self.exited = False

    def run(self) -> None:
        self.ran = True
        if self.signal_while_starting:  # before its event loop runs
            os.kill(os.getpid(), signal.SIGTERM)

    def exit(self) -> None:
        self.exited = True


def test_a_dashboard_is_not_opened_after_the_session_was_signalled():
    with SignalEnding() as ending:
        os.kill(os.getpid(), signal.SIGTERM)
        dashboard = _Dashboard()
        ending.run(dashboard)
    assert not dashboard.ran


def test_a_dashboard_signalled_before_its_loop_runs_is_told_to_exit():
    with SignalEnding() as ending:
        dashboard = _Dashboard(signal_while_starting=True)
        ending.run(dashboard)
    assert dashboard.ran and dashboard.exited
    assert ending.exit_code == 128 + signal.SIGTERM
