"""The board without Textual: post deltas, assert what must redraw."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state.board import ALL_SORTS, SORTS, Board, row_sort_key
from state.native import OwnerIdentity
from state.record import BrokenRecord, ExperimentRecord, FileVersion, StateFormat
from state.sources import Delta
from state.verdict import Liveness, StaleVerdict

WHEN = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
OWNER = OwnerIdentity(host="h", boot_id="b", pid=1, start_ticks=1, role="coordinator")


def record(key: str, status: str = "running", *, done: int = 0, total: int = 4, owner: bool = True, updated: int = 0) -> ExperimentRecord:
    return ExperimentRecord(
        key=key,
        path=Path(f"/s/{key}.json"),
        format=StateFormat.EXPWATCH,
        experiment_id=key,
        status=status,
        version=FileVersion(1, updated, 1),
        runs_done=done,
        runs_total=total,
        owner=OWNER if owner else None,
        last_updated=datetime.fromtimestamp(1_700_000_000 + updated, timezone.utc),
    )


def broken(key: str) -> BrokenRecord:
    return BrokenRecord(key, Path(f"/s/{key}.json"), "truncated")


def verdict(liveness: Liveness) -> StaleVerdict:
    return StaleVerdict(liveness, "scripted", ())


DEAD, ALIVE = verdict(Liveness.DEAD), verdict(Liveness.ALIVE)


def test_added_rows_are_membership_and_counted():
    board = Board()
    redraw = board.apply("", Delta({"a": record("a"), "b": record("b", "completed"), "x": broken("x")}))
    assert set(redraw.added) == {"a", "b", "x"} and redraw.membership and redraw.records
    assert set(redraw.changed) == {"a", "b", "x"}
    assert board.visible_counts == {"running": 1, "completed": 1, "broken": 1}
    assert board.order() == ["a", "x", "b"]  # status sort: running, broken, completed


def test_an_unchanged_upsert_redraws_nothing():
    board = Board()
    board.apply("", Delta({"a": record("a")}))
    redraw = board.apply("", Delta({"a": record("a")}))
    assert not redraw and not redraw.changed and not redraw.records


def test_a_verdict_changes_one_row_and_the_counts_but_not_the_records():
    board = Board()
    board.apply("", Delta({"a": record("a"), "b": record("b")}))
    redraw = board.apply("", Delta(verdicts={"a": DEAD}))
    assert list(redraw.changed) == ["a"] and not redraw.membership and not redraw.records
    assert redraw.moved  # stale sorts first
    assert board.visible_counts == {"stale": 1, "running": 1}
    assert board.order()[0] == "a"


def test_a_verdict_for_a_row_that_went_is_dropped():
    board = Board()
    board.apply("", Delta({"a": record("a")}))
    board.apply("", Delta(removed=("a",)))
    redraw = board.apply("", Delta(verdicts={"a": DEAD}))
    assert not redraw and "a" not in board.rows and not board.counts["stale"]


def test_removal_uncounts_and_forgets_the_judging():
    board = Board()
    board.apply("", Delta({"a": record("a")}, verdicts={"a": ALIVE}))
    assert board.to_judge == {"a"}
    redraw = board.apply("", Delta(removed=("a", "never-seen")))
    assert redraw.removed == ("a",) and redraw.records
    assert not board.visible_counts and not board.to_judge


def test_a_finished_experiment_loses_its_verdict():
    board = Board()
    board.apply("", Delta({"a": record("a")}, verdicts={"a": DEAD}))
    board.apply("", Delta({"a": record("a", "interrupted", updated=1)}))
    assert board.rows["a"].verdict is None and board.visible_counts == {"interrupted": 1}
    assert not board.to_judge


def test_nothing_to_probe_is_judged_once():
    board = Board()
    board.apply("", Delta({"a": record("a", owner=False)}))
    assert board.to_judge == {"a"}
    board.apply("", Delta(verdicts={"a": verdict(Liveness.UNKNOWN)}))
    assert not board.to_judge


def test_filter_matches_status_words_and_stale():
    board = Board()
    board.apply("", Delta({"a": record("a"), "b": record("b", "failed"), "x": broken("x")}, verdicts={"a": DEAD}))
    assert board.set_filter("stale") and board.order() == ["a"]
    assert not board.set_filter(" stale ")
    board.set_filter("broken")
    assert board.order() == ["x"]
    board.set_filter("")
    assert len(board.order()) == 3


def test_a_change_that_leaves_the_filter_is_a_move():
    board = Board()
    board.apply("", Delta({"a": record("a")}))
    board.set_filter("running")
    redraw = board.apply("", Delta({"a": record("a", "completed", updated=2)}))
    assert redraw.moved and board.order() == []


def test_sort_cycles_through_every_mode():
    board = Board()
    seen = [board.cycle_sort() for _ in SORTS]
    assert sorted(seen) == sorted(SORTS) and board.sort_mode == SORTS[0]
    with pytest.raises(ValueError):
        board.set_sort("colour")


def test_progress_sort():
    board = Board()
    board.apply("", Delta({"a": record("a", done=3), "b": record("b", done=1), "x": broken("x")}))
    board.set_sort("progress")
    assert board.order() == ["b", "a", "x"]


def test_several_sources_keep_keys_apart_and_show_where_from():
    board = Board(["lab", "gpu1"])
    board.apply("lab", Delta({"a": record("a")}))
    redraw = board.apply("gpu1", Delta({"a": record("a", "completed")}))
    assert redraw.added == ("gpu1:a",)
    assert set(board.rows) == {"lab:a", "gpu1:a"}
    assert board.rows["gpu1:a"].source == "gpu1"
    board.set_filter("gpu1")
    assert board.order() == ["gpu1:a"]
    assert [r.key for r in board.records_of("lab")] == ["a"]
    board.apply("lab", Delta(removed=("a",)))
    assert set(board.rows) == {"gpu1:a"}
    with pytest.raises(KeyError):
        board.apply("nowhere", Delta())
    with pytest.raises(ValueError):
        Board(["same", "same"])


def test_records_tuple_is_rebuilt_only_after_records_change():
    board = Board()
    board.apply("", Delta({"a": record("a"), "x": broken("x")}))
    first = board.records()
    assert [r.key for r in first] == ["a"]
    board.apply("", Delta(verdicts={"a": ALIVE}))
    assert board.records() is first
    board.apply("", Delta({"a": record("a", done=2)}))
    assert board.records() is not first


def test_devices_per_source():
    board = Board(["one", "two"])
    redraw = board.apply("one", Delta(devices=(), device_errors=("bad.json: truncated",)))
    assert redraw.devices and board.all_devices() == ((), ("bad.json: truncated",))
    assert not board.apply("two", Delta())


keys = st.sampled_from(list("abcdef"))
statuses = st.sampled_from(["running", "completed", "failed", "interrupted", "initialised"])
op = st.one_of(
    st.tuples(st.just("up"), keys, statuses, st.integers(0, 4)),
    st.tuples(st.just("rm"), keys),
    st.tuples(st.just("v"), keys, st.sampled_from(list(Liveness))),
    st.tuples(st.just("broken"), keys),
)
ops = st.lists(op, max_size=40)


def _apply_op(board: Board, op: tuple) -> None:
    if op[0] == "up":
        board.apply("", Delta({op[1]: record(op[1], op[2], done=op[3], updated=op[3])}))
    elif op[0] == "rm":
        board.apply("", Delta(removed=(op[1],)))
    elif op[0] == "v":
        board.apply("", Delta(verdicts={op[1]: verdict(op[2])}))
    elif op[0] == "sort":
        board.set_sort(op[1], reverse=board.sort_reverse)
    else:
        board.apply("", Delta({op[1]: broken(op[1])}))


@settings(max_examples=150, deadline=None)
@given(ops)
def test_counts_and_order_always_agree_with_the_rows(script):
    board = Board()
    for op in script:
        _apply_op(board, op)
        expected: dict[str, int] = {}
        for row in board.rows.values():
            expected[row.category] = expected.get(row.category, 0) + 1
        assert dict(board.visible_counts) == expected
        assert sorted(board.order()) == sorted(board.rows)
        for key, row in board.rows.items():
            if row.verdict is not None:
                assert row.entry.status == "running", key


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(op, st.tuples(st.just("sort"), st.sampled_from(SORTS))), max_size=40), st.booleans())
def test_each_order_is_sorted_though_keys_and_the_last_order_are_kept(script, reverse: bool):
    """Rows changed, added, removed, judged and resorted between orders: each order is still right."""
    board = Board()
    board.set_sort(SORTS[0], reverse=reverse)
    for op in script:
        _apply_op(board, op)
        order = board.order()
        assert sorted(order) == sorted(board.rows)
        by = row_sort_key(board.sort_mode)
        values = [by(board.rows[k]) for k in order]
        expected = sorted(values, reverse=reverse)
        if reverse:
            expected.sort(key=lambda v: v[0])
        assert values == expected


@pytest.mark.parametrize("mode", ALL_SORTS)
def test_every_column_sort_orders_records_and_broken_rows(mode: str):
    board = Board()
    board.apply("", Delta({"a": record("a", done=3), "b": record("b", "completed", done=1, updated=5), "x": broken("x")}))
    board.set_sort(mode)
    forward = board.order(WHEN)
    assert sorted(forward) == ["a", "b", "x"]
    board.set_sort(mode, reverse=True)
    backward = board.order(WHEN)
    assert sorted(backward) == ["a", "b", "x"]


def test_reverse_turns_the_order_round_and_keeps_rows_without_a_value_last():
    board = Board()
    board.apply("", Delta({"a": record("a", done=3), "b": record("b", done=1), "x": broken("x")}))
    assert board.set_sort("runs") and board.order() == ["b", "a", "x"]
    assert board.set_sort("runs", reverse=True) and board.order() == ["a", "b", "x"]
    assert not board.set_sort("runs", reverse=True)
    board.set_sort("id", reverse=True)
    assert board.order() == ["x", "b", "a"]


def test_cycling_from_a_column_sort_goes_back_to_the_first():
    board = Board()
    board.set_sort("energy", reverse=True)
    assert board.cycle_sort() == SORTS[0] and not board.sort_reverse
