"""A study in the inspector: its entries, and its failed entries' traceback files read safely."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from app.screens.inspector.overview import overview_sections
from app.screens.inspector.sections import Section, visible_sections
from state.inspection import read_snapshot
from state.inspection.study import TRACEBACK_LIMIT
from state.store import StateStore

CORPUS = Path(__file__).parent / "corpus"
EXPECT = json.loads((CORPUS / "expectations.json").read_text())
BREAKER = next(k for k, v in EXPECT["studies"].items() if v["status"] == "circuit_breaker")


@pytest.fixture
def results(tmp_path: Path) -> Path:
    target = tmp_path / "results"
    shutil.copytree(CORPUS / "results", target, copy_function=shutil.copy)  # written now, not at checkout
    return target


def _titles(results: Path) -> dict[str, object]:
    snap = read_snapshot(StateStore(results, read_only=True), BREAKER)
    sections = overview_sections(snap, None, now=datetime.now().astimezone(), base=results, has_verdict=False)
    return {s.title: s for s in sections}


def test_the_inspector_shows_entries_and_traceback_text(results: Path) -> None:
    snap = read_snapshot(StateStore(results, read_only=True), BREAKER)
    assert snap.reason is None and Section.PROCESSES in visible_sections(snap)
    assert [p.status for p in snap.processes] == EXPECT["studies"][BREAKER]["entries"]
    titles = _titles(results)
    assert "Entries (3)" in titles
    traces = [t for t in titles if t.startswith("Traceback of #")]
    assert len(traces) == 2
    assert "torch.OutOfMemoryError" in titles[traces[0]].note


def test_traceback_files_are_read_only_inside_the_study_and_size_limited(results: Path, tmp_path: Path) -> None:
    folder = results / BREAKER
    first, second = EXPECT["studies"][BREAKER]["log_files"]
    secret = tmp_path / "secret.txt"
    secret.write_text("do not show")
    (folder / first).unlink()
    (folder / first).symlink_to(secret)
    (folder / second).write_text("x" * (TRACEBACK_LIMIT * 4) + "\nValueError: the end")
    snap = read_snapshot(StateStore(results, read_only=True), BREAKER)
    outside, big = snap.tracebacks
    assert outside.text is None and "outside the study folder" in outside.reason
    assert big.text is not None and big.text.endswith("ValueError: the end") and len(big.text) < TRACEBACK_LIMIT + 100


def test_a_fifo_named_as_traceback_is_refused_without_blocking(results: Path) -> None:
    folder = results / BREAKER
    log = folder / EXPECT["studies"][BREAKER]["log_files"][0]
    log.unlink()
    os.mkfifo(log)
    snap = read_snapshot(StateStore(results, read_only=True), BREAKER)
    assert "not a regular file" in snap.tracebacks[0].reason
