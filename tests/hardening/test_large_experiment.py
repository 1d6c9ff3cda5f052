"""One experiment with many runs: compact files, a scan that counts runs, a writer that refuses
an unreadable file, and a watcher that re-reads a slow file less often."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest

import state.sources.directory
import state.store
from state.sources import DirectorySource
from state.detect import COUNT_RUNS_ABOVE, BrokenStateFile, parse_state, read_record, summarize
from state.native import INDENT_RUNS_UP_TO, ExperimentDoc, RunRecord, RunStatus
from state.record import BrokenRecord, ExperimentRecord, FileVersion
from state.store import StateStore, StoreError
from tests.runtime.helpers import expwatch, wait_for, write_study

NOW = datetime(2025, 3, 1, 12, 0).astimezone()


def doc_with_runs(n: int, experiment_id: str = "big") -> ExperimentDoc:
    statuses = (RunStatus.COMPLETED, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.PENDING, RunStatus.RUNNING)
    runs = [
        RunRecord(id_run=f"r{i:06d}", index=i, params={"i": i}, fields={"energy_j": i / 3},
                  status=statuses[i % len(statuses)], process_index=i % 2)
        for i in range(n)
    ]
    return ExperimentDoc(experiment_id=experiment_id, status="running", runs=runs, num_processes=2,
                         started_at=NOW, last_updated=NOW)


def test_files_are_indented_while_small_and_compact_once_runs_are_many() -> None:
    small = doc_with_runs(INDENT_RUNS_UP_TO).to_json()
    large = doc_with_runs(INDENT_RUNS_UP_TO + 1).to_json()
    assert small.startswith('{\n  "schema"')
    assert "\n" not in large
    assert ExperimentDoc.model_validate_json(large).runs[-1].index == INDENT_RUNS_UP_TO


@pytest.mark.parametrize("n", [10, COUNT_RUNS_ABOVE, COUNT_RUNS_ABOVE + 1, 3 * COUNT_RUNS_ABOVE])
def test_scan_summary_equals_the_full_parse(n: int) -> None:
    data = doc_with_runs(n).to_json().encode()
    version = FileVersion(1, 2, len(data))
    fmt, model = parse_state(data)
    full = summarize("big", Path("big.json"), version, fmt, model)
    assert read_record("big", Path("big.json"), version, data) == full
    assert (full.runs_total, full.runs_done, full.runs_failed) == (n, sum(1 for i in range(n) if i % 5 in (0, 1)),
                                                                   sum(1 for i in range(n) if i % 5 == 2))


@pytest.mark.parametrize(("bad", "reason"), [
    ({"status": "exploded"}, "unknown status 'exploded' in runs.7.status"),
    ("not a run", "wrong type at runs.7: not an object"),
])
def test_a_bad_run_in_a_large_file_is_still_a_broken_row(bad: object, reason: str) -> None:
    value = json.loads(doc_with_runs(COUNT_RUNS_ABOVE + 10).to_json())
    value["runs"][7] = {**value["runs"][7], **bad} if isinstance(bad, dict) else bad
    data = json.dumps(value).encode()
    with pytest.raises(BrokenStateFile) as exc:
        read_record("big", Path("big.json"), FileVersion(1, 2, len(data)), data)
    assert exc.value.reason == reason
    with pytest.raises(BrokenStateFile):
        parse_state(data)  # the full parse (inspector, actions) refuses it too


def test_a_bad_top_level_field_in_a_large_file_is_a_broken_row() -> None:
    value = json.loads(doc_with_runs(COUNT_RUNS_ABOVE + 10).to_json())
    value["num_processes"] = "many"
    data = json.dumps(value).encode()
    with pytest.raises(BrokenStateFile, match="num_processes"):
        read_record("big", Path("big.json"), FileVersion(1, 2, len(data)), data)


def test_save_refuses_a_document_over_the_size_limit_and_keeps_the_old_file(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StateStore(state_dir)
    saved = store.save(doc_with_runs(10))
    before = saved.path.read_bytes()
    monkeypatch.setattr(state.store, "MAX_STATE_FILE_BYTES", len(before) + 100)
    with pytest.raises(StoreError, match="state file limit; not written"):
        store.save(doc_with_runs(200), expected=saved.version)
    assert saved.path.read_bytes() == before
    assert list((store.sidecar_dir / "tmp").iterdir()) == []


def test_a_slow_file_is_re_read_less_often_but_never_lost(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every read counts as slow and waits cost / duty: at least 0.1 ms * 2,000 = 0.2 s here.
    monkeypatch.setattr(state.store, "SLOW_READ_S", 0.0)
    monkeypatch.setattr(state.sources.directory, "READ_DUTY", 0.0005)
    store = StateStore(state_dir)
    monitor = DirectorySource(state_dir, store=store)
    saved = store.save(doc_with_runs(10, "hot"))
    path = str(monitor.root / saved.path.name)
    first = monitor.hint({path})
    assert isinstance(first.upserts["hot"], ExperimentRecord) and first.upserts["hot"].runs_total == 10

    saved = store.save(doc_with_runs(20, "hot"), expected=saved.version)
    deferred = monitor.hint({path})
    assert not deferred and monitor.has_deferred
    started = time.monotonic()
    delta = wait_for(lambda: monitor.hint(set()) or None, timeout=10.0, what="the deferred re-read")
    assert time.monotonic() - started > 0.05
    assert delta.upserts["hot"].runs_total == 20 and not monitor.has_deferred

    # A fast file is never deferred.
    monkeypatch.setattr(state.store, "SLOW_READ_S", 10.0)
    saved = store.save(doc_with_runs(30, "hot"), expected=saved.version)
    wait_for(lambda: monitor.hint({path}) or None, timeout=10.0, what="the slow file's last deferral")
    saved = store.save(doc_with_runs(40, "hot"), expected=saved.version)
    assert monitor.hint({path}).upserts["hot"].runs_total == 40


def test_a_broken_large_file_is_shown_as_broken_in_a_scan(state_dir: Path) -> None:
    value = json.loads(doc_with_runs(COUNT_RUNS_ABOVE + 10).to_json())
    value["runs"][3]["status"] = "exploded"
    (state_dir / "big.json").write_text(json.dumps(value))
    store = StateStore(state_dir, read_only=True)
    store.scan()
    entry = store.entries["big"]
    assert isinstance(entry, BrokenRecord) and "runs.3.status" in entry.reason


def test_runner_runs_a_grid_past_the_scan_threshold(tmp_path: Path, state_dir: Path) -> None:
    """A real runner: compact file, the scan's row and the full load agree on every count."""
    n = COUNT_RUNS_ABOVE + 500
    study = write_study(tmp_path, f"""\
        def measure(run):
            run.fields.twice = run.params.i * 2

        steps = [measure]
        grid = {{"i": range({n})}}
        """)
    done = expwatch("run", study, "--state-dir", state_dir, "--id", "wide", "-p", "2", cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    text = (state_dir / "wide.json").read_text()
    assert "\n" not in text.strip()
    store = StateStore(state_dir, read_only=True)
    store.scan()
    row = store.entries["wide"]
    assert isinstance(row, ExperimentRecord)
    assert (row.status, row.runs_total, row.runs_done, row.runs_failed) == ("completed", n, n, 0)
    doc = store.load("wide").model
    assert isinstance(doc, ExperimentDoc)
    assert [r.fields["twice"] for r in doc.runs] == [2 * i for i in range(n)]
