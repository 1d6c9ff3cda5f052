"""Following a database while it is rewritten: persist(if_exists="replace") never flashes a row away.

The first test replays MLtraq's persist() step by step with sqlite3 (delete the
row, insert it again, drop the runs table, refill it in chunks), polling
between steps. The second runs a real MLtraq process persisting in a loop
while the source polls; it needs the environment tests/mltraq/generate.py
caches (skipped without it).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from state.record import ExperimentRecord
from state.sources.mltraq import REWRITE_GRACE_S, MltraqSource

from tests.mltraq.generate import venv_python
from tests.mltraq.hostile import add_experiment, bunch, create, datapak, meta, write_runs

HERE = Path(__file__).parent


def runs(n: int) -> list[dict]:
    return [{"status": "ok", "i": i} for i in range(n)]


def test_replace_keeps_the_last_good_row_marked_until_the_new_one_is_complete(tmp_path: Path):
    db = tmp_path / "live.db"
    conn = create(db)
    add_experiment(conn, "sweep", runs(3))
    clock = [0.0]
    source = MltraqSource(db, clock=lambda: clock[0])
    list(source.initial_batches())
    first = source.entries()["sweep"]
    seen: list[ExperimentRecord] = []

    def step() -> None:
        delta = source.poll()
        assert "sweep" not in delta.removed
        seen.append(source.entries()["sweep"])

    conn.execute("DELETE FROM experiments WHERE name = 'sweep'")
    step()
    ident = uuid.uuid4().hex
    conn.execute("INSERT INTO experiments VALUES (?, 'sweep', ?, ?, NULL)", (ident, meta("experiment_sweep", 5), datapak(bunch({}))))
    step()
    conn.execute("DROP TABLE experiment_sweep")
    step()
    write_runs(conn, "experiment_sweep", ident, runs(2))  # the first chunk of five
    step()
    for record in seen:
        assert record.runs_total == 3 and record.raw_status.endswith("being rewritten") and "being rewritten" in record.name
    write_runs(conn, "experiment_sweep", ident, runs(5))
    source.poll()
    done = source.entries()["sweep"]
    assert done.runs_total == 5 and not done.raw_status.endswith("being rewritten")
    assert done.last_updated is not None and first.runs_total == 3


def test_a_table_gone_for_good_is_shown_as_it_is_after_the_grace(tmp_path: Path):
    db = tmp_path / "gone.db"
    conn = create(db)
    add_experiment(conn, "sweep", runs(2))
    add_experiment(conn, "dropped", runs(2))
    clock = [0.0]
    source = MltraqSource(db, clock=lambda: clock[0])
    list(source.initial_batches())
    conn.execute("DROP TABLE experiment_sweep")
    conn.execute("DELETE FROM experiments WHERE name = 'dropped'")
    source.poll()
    assert source.entries()["sweep"].runs_total == 2 and "dropped" in source.entries()
    clock[0] = REWRITE_GRACE_S + 1
    delta = source.poll()
    assert delta.removed == ("dropped",)
    sweep = source.entries()["sweep"]
    assert sweep.runs_total == 0 and "runs table missing" in sweep.raw_status


def test_a_real_mltraq_persisting_in_a_loop_never_shows_a_partial_experiment(tmp_path: Path):
    python = venv_python()
    if python is None:
        pytest.skip("no MLtraq environment (python tests/mltraq/generate.py makes one)")
    db = tmp_path / "loop.db"
    create(db).close()
    source = MltraqSource(db)
    list(source.initial_batches())
    stop = threading.Event()
    counts: list[int] = []
    removed: list[str] = []

    def follow() -> None:
        for delta in source.follow(stop):
            removed.extend(delta.removed)
            counts.extend(r.runs_total for r in delta.upserts.values() if isinstance(r, ExperimentRecord))

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        writer = subprocess.run(
            [str(python), str(HERE / "write_databases.py"), "--persist-loop", str(db), "sweep", "4"],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        stop.set()
        follower.join()
    assert writer.returncode == 0, writer.stderr[-2000:]  # MLtraq's persist never met a held lock
    assert writer.stdout.split() == ["persisted", "600", "persisted", "1200", "persisted", "1800", "persisted", "2400"]
    source.poll()
    assert source.entries()["sweep"].runs_total == 2400
    assert removed == []
    assert counts and set(counts) <= {600, 1200, 1800, 2400}, sorted(set(counts))
