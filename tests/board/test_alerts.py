"""Alerts come from transitions the board saw happen: once each, never from the first load."""

from __future__ import annotations

from dataclasses import replace

from state.alerts import FAILED, FINISHED, STALE
from state.board import Board
from state.sources import Delta

from tests.board.test_board import ALIVE, DEAD, WHEN, broken, record


def kinds(redraw) -> list[tuple[str, str]]:
    return [(a.kind, a.experiment_id) for a in redraw.alerts]


def test_the_first_load_alerts_nothing_not_even_its_first_verdicts():
    board = Board()
    first = board.apply("", Delta({"f": record("f", "failed"), "d": record("d", "completed"), "s": record("s")}))
    assert not first.alerts
    judged = board.apply("", Delta(verdicts={"s": DEAD}))  # loaded running, first judged dead: already stale
    assert not judged.alerts and board.get("s").category == "stale"


def test_each_transition_alerts_once():
    board = Board()
    board.apply("", Delta({"a": record("a"), "b": record("b"), "c": record("c")}))
    board.apply("", Delta(verdicts={"a": ALIVE, "b": ALIVE, "c": ALIVE}))
    redraw = board.apply("", Delta({"a": replace(record("a", "failed"), error_message="ValueError: boom\nmore")},
                                   verdicts={"b": DEAD}))
    assert sorted(kinds(redraw)) == [(FAILED, "a"), (STALE, "b")]
    failed = next(a for a in redraw.alerts if a.kind == FAILED)
    assert failed.reason == "ValueError: boom" and failed.from_status == "running" and failed.to_status == "failed"
    assert not board.apply("", Delta(verdicts={"b": DEAD})).alerts  # the same state again: nothing
    done = board.apply("", Delta({"c": record("c", "completed", done=4)}))
    assert kinds(done) == [(FINISHED, "c")] and done.alerts[0].reason == "4/4 runs"
    # llenergymeasure v1's completed -> aggregated is still finished: no second alert.
    assert not board.apply("", Delta({"c": record("c", "aggregated", done=4)})).alerts


def test_a_row_that_goes_and_comes_back_is_a_load_not_a_transition():
    board = Board()
    board.apply("", Delta({"a": record("a")}))
    board.apply("", Delta(removed=("a",)))
    assert not board.apply("", Delta({"a": record("a", "failed")})).alerts


def test_broken_rows_never_alert():
    board = Board()
    board.apply("", Delta({"a": record("a")}))
    assert not board.apply("", Delta({"a": broken("a")})).alerts
    assert not board.apply("", Delta({"a": record("a", "failed")})).alerts


def test_the_event_a_hook_reads():
    board = Board(["lab", "gpu1"])
    board.apply("gpu1", Delta({"a": record("a")}))
    [alert] = board.apply("gpu1", Delta({"a": record("a", "failed")})).alerts
    event = alert.to_json_dict(WHEN)
    assert event == {
        "event": "failed", "experiment": "a", "key": "gpu1:a", "source": "gpu1", "from": "running", "to": "failed",
        "reason": "", "message": "a failed", "at": "2026-11-21T12:00:00+00:00",
    }
