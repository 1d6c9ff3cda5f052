"""Ages and durations read the same in the table, the inspector, the verdicts and the CLI."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from state.durations import age, duration, seconds_to_change

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (80, "1m20s"), (3599, "59m59s"), (7200, "2h00m"), (7560, "2h06m"), (2 * 86400 + 3 * 3600, "2d03h"), (None, "–")],
)
def test_one_format(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_every_caller_uses_it() -> None:
    from app.commands._common import age_of
    from state.native import OwnerIdentity
    from state.verdict import HostFacts, judge_owner
    from widgets import formatting

    then = NOW - timedelta(hours=2)
    assert formatting.age(NOW, then) == age_of(then, NOW) == age(NOW, then) == "2h00m"
    assert age_of(None, NOW) == "-" and formatting.age(NOW, None) == "–"
    owner = OwnerIdentity(host="elsewhere", boot_id="b", pid=1, start_ticks=1, role="coordinator")
    verdict = judge_owner(owner, here=HostFacts("here", "b"), evidence=None, heartbeat_at=then, heartbeat_interval_s=2.0, now=NOW)
    assert "no heartbeat for 2h00m" in verdict.reason


@pytest.mark.parametrize("rate", [1.0, 0.25, 3.0])
@pytest.mark.parametrize("seconds", [-5.5, -0.2, 0.0, 0.4, 59.0, 59.99, 61.3, 3599.5, 3600.0, 7259.0, 86399.0, 90061.7, 200000.0])
def test_seconds_to_change_is_exactly_when_the_text_changes(seconds: float, rate: float) -> None:
    """Never late (the text is the same just before) and never early (different just after)."""
    due = seconds_to_change(seconds, rate)
    assert due is not None and due > 0
    before, after = seconds + rate * (due - 1e-6), seconds + rate * (due + 1e-6)
    assert duration(before) == duration(seconds) != duration(after)


def test_a_length_that_stands_still_never_changes() -> None:
    assert seconds_to_change(42.0, 0.0) is None
    assert seconds_to_change(None, 1.0) is None
    assert seconds_to_change(float("nan"), 1.0) is None
