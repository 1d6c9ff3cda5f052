"""Ages and durations read the same in the table, the inspector, the verdicts and the CLI."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from state.durations import age, duration

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
