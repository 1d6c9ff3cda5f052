"""Inspector figures: how long an experiment with many runs takes to open.

The clock starts at ``push_screen`` and stops at the first frame that draws a
populated runs table (the first ``RunTable.render_line`` call that has rows),
inside an ``App.run_test()`` harness; the screen is popped and pushed again for
each repetition. Also timed: the first frame of the Overview with the data
in it, the slower second phase (raw text, verdict, journal, step checks), the
file read alone, a filter over all runs, and, for reference, what a plain
``DataTable`` takes to show the same rows.

Goal: 10,000 runs open in <= 300 ms (median).

    .venv/bin/python benchmarks/bench_inspector.py [--runs 10000] [--reps 7] [--no-datatable]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textual.app import App, ComposeResult  # noqa: E402
from textual.widgets import DataTable, Static  # noqa: E402

from app.screens.inspector import InspectorScreen, Section  # noqa: E402
from app.screens.inspector.runs import runs_view  # noqa: E402
from state.inspection import ExtrasReader, read_snapshot  # noqa: E402
from state.hashing import source_hash  # noqa: E402
from state.native import (  # noqa: E402
    ExceptionInfo,
    ExperimentDoc,
    OwnerIdentity,
    ProcessInfo,
    RunRecord,
    RunStatus,
    StepInfo,
)
from state.store import StateStore  # noqa: E402
from state.transitions import ExperimentStatus, ProcessStatus  # noqa: E402
from state.verdict import Liveness, StaleVerdict  # noqa: E402
from widgets.overview_panel import OverviewPanel  # noqa: E402
from widgets.raw_json import RawText  # noqa: E402
from widgets.run_table import RunTable  # noqa: E402

SIZE = (120, 40)
GOAL_MS = 300.0
STEP_SOURCE = "def measure(params, state):\n    return {'energy_j': 1.0}\n"


def make_experiment(root: Path, runs: int) -> tuple[StateStore, str]:
    """One expwatch experiment with ``runs`` runs over 4 processes, a third of them failed."""
    start = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    statuses = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.PENDING)
    records = []
    for i in range(runs):
        status = statuses[i % 3]
        records.append(
            RunRecord(
                id_run=f"r-{i:05d}",
                index=i,
                params={"batch_size": 2 ** (i % 6), "precision": ("bf16", "fp16")[i % 2], "lr": 0.001 * (i % 7)},
                fields={"energy_j": 100.0 + i, "tokens_per_s": 55.5, "latency_ms": 12.0} if status is RunStatus.COMPLETED else {},
                state={"seed": i},
                status=status,
                exception=ExceptionInfo(type="MemoryError", message="CUDA out of memory",
                                        traceback="Traceback (most recent call last):\n  File \"study.py\", line 3, in measure\nMemoryError: CUDA out of memory\n")
                if status is RunStatus.FAILED else None,
                process_index=i % 4,
                attempt=1,
                started_at=start + timedelta(seconds=i),
            )
        )
    study = root.parent / "study.py"
    study.write_text(STEP_SOURCE)
    doc = ExperimentDoc(
        experiment_id="bench-10k",
        name="inspector benchmark",
        status=ExperimentStatus.RUNNING,
        config={"model": "llama-3-8b"},
        grid={"batch_size": [1, 2, 4, 8, 16, 32], "precision": ["bf16", "fp16"]},
        num_processes=4,
        owner=OwnerIdentity(host="bench", pid=1, start_ticks=1),
        processes={
            str(p): ProcessInfo(process_index=p, status=ProcessStatus.RUNNING, gpu_id=p, runs_total=runs // 4)
            for p in range(4)
        },
        runs=records,
        steps=[StepInfo(name="measure", qualname="measure", file=str(study), line=1,
                        source=STEP_SOURCE, source_hash=source_hash(STEP_SOURCE))],
        last_updated=start,
    )
    store = StateStore(root, durable=False)
    saved = store.create(doc)
    return store, saved.path.name[:-5]


def verdict(record) -> StaleVerdict:
    return StaleVerdict(Liveness.ALIVE, "benchmark")


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("main")


class Marks:
    """Times (perf_counter) of the first populated frames, recorded by wrapped render methods."""

    def __init__(self) -> None:
        self.runs_frame: float | None = None
        self.overview_frame: float | None = None

    def install(self) -> Callable[[], None]:
        marks = self
        run_render = RunTable.render_line
        overview_render = OverviewPanel.render

        def render_line(table, y):
            if marks.runs_frame is None and table.total_rows:
                marks.runs_frame = time.perf_counter()
            return run_render(table, y)

        def render(panel):
            if marks.overview_frame is None and any(s.title == "Experiment" for s in panel.sections):
                marks.overview_frame = time.perf_counter()
            return overview_render(panel)

        RunTable.render_line = render_line  # type: ignore[method-assign]
        OverviewPanel.render = render  # type: ignore[method-assign]

        def undo() -> None:
            RunTable.render_line = run_render  # type: ignore[method-assign]
            OverviewPanel.render = overview_render  # type: ignore[method-assign]

        return undo


async def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(0.001)


async def time_open(store: StateStore, key: str, reps: int, section: Section) -> dict[str, list[float]]:
    marks = Marks()
    undo = marks.install()
    out: dict[str, list[float]] = {"frame": [], "extras": [], "filter": []}
    try:
        app = Host()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            for _ in range(reps):
                marks.runs_frame = marks.overview_frame = None
                screen = InspectorScreen(store, key, verdict_provider=verdict, section=section, poll_interval=60)
                t0 = time.perf_counter()
                app.push_screen(screen)
                if section is Section.RUNS:
                    await _until(lambda: marks.runs_frame is not None)
                    out["frame"].append((marks.runs_frame - t0) * 1000)  # type: ignore[operator]
                else:
                    await _until(lambda: marks.overview_frame is not None)
                    out["frame"].append((marks.overview_frame - t0) * 1000)  # type: ignore[operator]
                await _until(lambda: screen.extras is not None)
                out["extras"].append((time.perf_counter() - t0) * 1000)
                if section is Section.RUNS:
                    table = screen.query_one(RunTable)
                    t1 = time.perf_counter()
                    table.set_filter("failed 16")
                    out["filter"].append((time.perf_counter() - t1) * 1000)
                app.pop_screen()
                await pilot.pause()
    finally:
        undo()
    return out


async def time_datatable(store: StateStore, key: str) -> float:
    """A plain DataTable given the same rows: add_rows to the first frame with them."""
    runs = runs_view(read_snapshot(store, key))
    assert runs is not None
    rows = [row.cells for row in runs.table.rows]
    labels = [c.label for c in runs.table.columns]
    first: list[float] = []
    original = DataTable.render_line

    def render_line(table, y):
        if not first and table.row_count:
            first.append(time.perf_counter())
        return original(table, y)

    DataTable.render_line = render_line  # type: ignore[method-assign]
    try:
        app = Host()
        async with app.run_test(size=SIZE) as pilot:
            table = DataTable()
            await app.mount(table)
            table.add_columns(*labels)
            await pilot.pause()
            t0 = time.perf_counter()
            table.add_rows(rows)
            await _until(lambda: bool(first), timeout=120)
            return (first[0] - t0) * 1000
    finally:
        DataTable.render_line = original  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--no-datatable", action="store_true", help="skip the (slow) DataTable reference")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="expwatch-bench-inspector-"))
    try:
        root = tmp / ".state"
        root.mkdir()
        store, key = make_experiment(root, args.runs)
        size_mb = (root / f"{key}.json").stat().st_size / 1e6

        reads = []
        extras = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            snap = read_snapshot(store, key)
            runs_view(snap)
            reads.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            RawText.from_text(snap.text)
            ExtrasReader(store, verdict, None).read(snap)
            extras.append((time.perf_counter() - t0) * 1000)

        runs = asyncio.run(time_open(store, key, args.reps, Section.RUNS))
        overview = asyncio.run(time_open(store, key, args.reps, Section.OVERVIEW))
        reference = None if args.no_datatable else asyncio.run(time_datatable(store, key))

        med = statistics.median
        print(f"inspector, {args.runs:,} runs ({size_mb:.1f} MB file), median of {args.reps}, terminal {SIZE[0]}x{SIZE[1]}")
        print(f"{'measure':<58} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
        rows = [
            ("push -> first frame, Runs tab populated (goal <= 300)", runs["frame"]),
            ("push -> first frame, Overview with data", overview["frame"]),
            ("push -> second phase applied (raw, verdict, journal)", runs["extras"]),
            ("read + parse + table rows (worker, alone)", reads),
            ("second phase (worker, alone)", extras),
            ("filter all runs ('failed 16', first use builds the index)", runs["filter"]),
        ]
        for label, values in rows:
            print(f"{label:<58} {med(values):>10.1f} {min(values):>8.1f} {max(values):>8.1f}")
        if reference is not None:
            print(f"{'reference: DataTable.add_rows -> first frame (once)':<58} {reference:>10.1f}")
        verdict_line = "PASS" if med(runs["frame"]) <= GOAL_MS else "FAIL"
        print(f"goal {GOAL_MS:.0f} ms: {verdict_line}")
        return 0 if verdict_line == "PASS" else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
