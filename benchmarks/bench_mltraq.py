"""MLtraq source figures: reading a 10,000-run experiment, and how soon a persist() reaches the screen.

The database is written with sqlite3 in MLtraq's layout (an ``experiments``
row with DATAPAK ``meta`` and ``fields`` blobs; a runs table with a status
text, a float, a pickled codelog and an ``.npy``-tagged array per run), so no
MLtraq install is needed. Timed: the list scan (one row per experiment), the
inspector's full read (every run and column decoded, the raw JSON text), and
the runs table built from it. Latency: a dashboard (``App.run_test``) follows
the database; a writer replays ``persist(if_exists="replace")`` (row deleted
and inserted, table dropped and refilled in commits of 1,000 runs); the clock
runs from the writer's last commit to the board holding the new run count.

    .venv/bin/python benchmarks/bench_mltraq.py [--runs 10000] [--reps 5] [--persists 10]
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.app import DashboardOptions, ExpwatchApp  # noqa: E402
from app.screens.inspector.runs import mltraq_runs_table  # noqa: E402
from state.sources.mltraq import MltraqSource  # noqa: E402

CODE = "def train(run):\n    run.fields.loss = 1.0 / (run.params.lr * 100)\n    run.fields.status = 'ok'\n"


def tagged(kind: str, value: object) -> dict:
    return {"DATAPAK-0": kind, "value": value}


def persist(conn: sqlite3.Connection, name: str, runs: int, *, chunk: int = 1000) -> str:
    """What MLtraq's persist(if_exists="replace") does to the file, commit by commit."""
    ident = uuid.uuid4().hex
    table = f"experiment_{name}"
    meta = pickle.dumps(tagged("mltraq.Bunch-0", {"runs": tagged("mltraq.Bunch-0", {"count": runs, "table_name": table})}))
    codelog = pickle.dumps([tagged("mltraq.Bunch-0", {"name": "train", "code": CODE, "pathname": "study.py", "pathname_lineno": 3})])
    array = pickle.dumps(tagged("numpy.ndarray-0", b"\x93NUMPY" + bytes(120)))
    conn.execute("DELETE FROM experiments WHERE name = ?", (name,))
    conn.execute("INSERT INTO experiments VALUES (?, ?, ?, ?, NULL)", (ident, name, meta, pickle.dumps(tagged("mltraq.Bunch-0", {"dataset": "iris"}))))
    conn.execute(f'DROP TABLE IF EXISTS "{table}"')
    conn.execute(f'CREATE TABLE "{table}" (id_experiment CHAR(32), id_run CHAR(32), arr BLOB, codelog BLOB, loss FLOAT, status TEXT)')
    for start in range(0, runs, chunk):
        conn.execute("BEGIN")
        conn.executemany(
            f'INSERT INTO "{table}" VALUES (?, ?, ?, ?, ?, ?)',
            [(ident, uuid.uuid4().hex, array, codelog, 1.0 / (i + 1), "ok") for i in range(start, min(runs, start + chunk))],
        )
        conn.execute("COMMIT")
    return ident


def create(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE experiments (id_experiment CHAR(32) NOT NULL PRIMARY KEY, name VARCHAR NOT NULL UNIQUE, meta BLOB, fields BLOB NOT NULL, unsafe_pickle BLOB)")
    return conn


def timed(fn, reps: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(reps):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


async def latency(path: Path, conn: sqlite3.Connection, persists: int) -> list[float]:
    app = ExpwatchApp(DashboardOptions(sources=(path,), gpus=False))
    out = []
    async with app.run_test(size=(120, 30)) as pilot:
        while not app.scan_complete:
            await pilot.pause(0.01)
        for n in range(persists):
            runs = 200 + n
            await asyncio.to_thread(persist, conn, "live", runs)
            done = time.perf_counter()
            key = next((k for k, r in app.board.rows.items() if r.entry.key == "live"), None)
            while key is None or app.board.get(key).entry.runs_total != runs:
                await pilot.pause(0.002)
                key = next((k for k, r in app.board.rows.items() if r.entry.key == "live"), None)
            out.append(time.perf_counter() - done)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--persists", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="1,000 runs, 3 reps, 5 persists")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.reps, args.persists = 1_000, 3, 5
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runs.db"
        conn = create(path)
        persist(conn, "big", args.runs)
        print(f"database: {path.stat().st_size / 1e6:.1f} MB, one experiment of {args.runs:,} runs")
        source = MltraqSource(path)
        scan, _ = timed(lambda: list(MltraqSource(path).initial_batches()), args.reps)
        reader = source.snapshot_reader()
        read, snap = timed(lambda: reader.read("big"), args.reps)
        table, data = timed(lambda: mltraq_runs_table(snap.model), args.reps)
        assert len(data.rows) == args.runs
        lat = asyncio.run(latency(path, conn, args.persists))
        rows = [
            ("list scan (summary row)", f"{scan * 1000:.0f} ms"),
            ("inspector read (all runs decoded + raw JSON)", f"{read * 1000:.0f} ms"),
            ("runs table built", f"{table * 1000:.0f} ms"),
            ("persist() -> board, median", f"{statistics.median(lat) * 1000:.0f} ms"),
            ("persist() -> board, max", f"{max(lat) * 1000:.0f} ms"),
        ]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
