"""llenergymeasure 0.7.0 studies, against the corpus its own code wrote (``make_corpus.py``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from runtime.actions import execute_mark_stale, plan_mark_stale, plan_resume
from state.record import BrokenRecord, ExperimentRecord, StateFormat
from state.sources import DirectorySource
from state.store import StateStore
from state.verdict import STUDY_QUIET_MIN_S, HostFacts, Liveness, ProcessEvidence, ToolProcess

CORPUS = Path(__file__).parent / "corpus"
EXPECT = json.loads((CORPUS / "expectations.json").read_text())
KILLED = EXPECT["killed_study"]


class Probe:
    """This host with a chosen list of llenergymeasure processes."""

    def __init__(self, lem: tuple[ToolProcess, ...] = ()):
        self.lem = lem

    def host_facts(self) -> HostFacts:
        return HostFacts("here", "boot")

    def probe(self, pid: int) -> ProcessEvidence:
        return ProcessEvidence(pid=pid, exists=False)

    def llenergymeasure_processes(self) -> tuple[ToolProcess, ...]:
        return self.lem


@pytest.fixture
def results(tmp_path: Path) -> Path:
    target = tmp_path / "project" / "results"
    # Fresh mtimes (shutil.copy, not copy2): the quiet-study rule reads the manifest's age, and the
    # corpus files are as old as the checkout.
    shutil.copytree(CORPUS / "results", target, copy_function=shutil.copy)
    return target


def _age(path: Path, seconds: float) -> None:
    then = (datetime.now() - timedelta(seconds=seconds)).timestamp()
    os.utime(path, (then, then))


def test_every_study_is_one_row_with_llenergymeasures_status(results: Path) -> None:
    store = StateStore(results, read_only=True)
    store.scan()
    assert not [e for e in store.entries.values() if isinstance(e, BrokenRecord)]
    assert set(store.entries) == set(EXPECT["studies"])
    for key, want in EXPECT["studies"].items():
        record = store.entries[key]
        assert isinstance(record, ExperimentRecord)
        assert record.format is StateFormat.LEM_STUDY
        assert (record.experiment_id, record.name, record.raw_status) == (key, want["study_name"], want["status"])
        assert [p.status for p in record.processes] == want["entries"]
        assert (record.runs_done, record.runs_failed) == (want["counts"]["completed"], want["counts"]["failed"])
        assert (record.energy_joules or 0) == pytest.approx(want["energy_joules"])
    statuses = {e.raw_status: e.status for e in store.entries.values() if isinstance(e, ExperimentRecord)}
    assert statuses["circuit_breaker"] == "failed" and statuses["timed_out"] == "interrupted"


def test_one_study_folder_shows_that_study_and_skips_its_sidecars(results: Path) -> None:
    folder = results / KILLED
    store = StateStore(folder, read_only=True)
    store.scan()
    assert list(store.entries) == ["manifest"]
    record = store.entries["manifest"]
    assert isinstance(record, ExperimentRecord) and record.experiment_id == KILLED


def test_sidecars_are_skipped_even_when_named_like_experiments(results: Path) -> None:
    folder = results / KILLED
    shutil.copy(folder / "equivalence_groups.json", folder / "groups-copy.json")
    store = StateStore(folder, read_only=True)
    store.scan()
    assert list(store.entries) == ["manifest"]


def test_directory_source_finds_new_study_folders_from_hints(results: Path, tmp_path: Path) -> None:
    source = DirectorySource(tmp_path / "project" / "results")
    for _ in source.initial_batches():
        pass
    assert len(source.entries()) == len(EXPECT["studies"])
    new = results / "late-study_2026-01-01T00-00-00"
    shutil.copytree(results / KILLED, new)
    delta = source.hint({str(new)})
    assert set(delta.upserts) == {new.name}
    (new / "manifest.json").unlink()
    delta = source.hint({str(new / "manifest.json")})
    assert delta.removed == (new.name,)


def test_a_quiet_running_study_with_no_llem_process_is_probably_dead(results: Path) -> None:
    store = StateStore(results)
    manifest = results / KILLED / "manifest.json"
    _age(manifest, 0)  # just written (the copied corpus keeps its checkout time)
    assert plan_mark_stale(store, KILLED, probe=Probe()).verdict.liveness is Liveness.UNKNOWN
    _age(manifest, STUDY_QUIET_MIN_S + 60)
    busy = Probe((ToolProcess(4242, "llem run other.yaml"),))
    held = plan_mark_stale(store, KILLED, probe=busy)
    assert held.verdict.liveness is Liveness.UNKNOWN and "pid 4242" in held.verdict.evidence[0]
    plan = plan_mark_stale(store, KILLED, probe=Probe())
    assert plan.verdict.is_dead and plan.verdict.reason.startswith("probably dead")
    assert any("no PID is recorded" in line for line in plan.verdict.evidence)


def test_mark_stale_writes_exactly_what_mark_interrupted_writes(results: Path) -> None:
    store = StateStore(results)
    manifest = results / KILLED / "manifest.json"
    _age(manifest, STUDY_QUIET_MIN_S + 60)
    result = execute_mark_stale(store, plan_mark_stale(store, KILLED, probe=Probe()))
    assert (result.from_status, result.to_status) == ("running", "interrupted")
    assert manifest.read_bytes() == (CORPUS / "killed-study.mark_interrupted.json").read_bytes()
    assert EXPECT["find_resumable_study_after_mark"] == KILLED


def test_the_journal_and_history_name_a_study_by_its_folder_not_the_name_its_runs_share(results: Path) -> None:
    from state.inspection.history import HistoryReader
    from state.inspection.snapshot import read_snapshot

    twin = KILLED.rsplit("_", 1)[0] + "_2026-12-02T09-00-00"
    shutil.copytree(results / KILLED, results / twin, copy_function=shutil.copy)
    _age(results / KILLED / "manifest.json", STUDY_QUIET_MIN_S + 60)
    store = StateStore(results)
    execute_mark_stale(store, plan_mark_stale(store, KILLED, probe=Probe()))
    assert [(e.experiment, e.action) for e in store.journal.entries()] == [(KILLED, "mark-stale")]
    history = HistoryReader(store)
    store.scan()
    marked, untouched = (read_snapshot(store, key) for key in (_key(store, KILLED), _key(store, twin)))
    assert [row.change for row in history.history(marked) if row.source == "journal"] == ["mark-stale: running → interrupted"]
    assert [row for row in history.history(untouched) if row.source == "journal"] == []


def _key(store: StateStore, ident: str) -> str:
    return next(k for k, e in store.entries.items() if e.experiment_id == ident)


@pytest.mark.skipif(not os.environ.get("EXPWATCH_LEM_PYTHON"), reason="needs a Python with llenergymeasure 0.7.0")
def test_llenergymeasure_resumes_what_mark_stale_wrote(results: Path) -> None:
    store = StateStore(results)
    _age(results / KILLED / "manifest.json", STUDY_QUIET_MIN_S + 60)
    execute_mark_stale(store, plan_mark_stale(store, KILLED, probe=Probe()))
    out = subprocess.run(
        [os.environ["EXPWATCH_LEM_PYTHON"], str(Path(__file__).parent / "make_corpus.py"), "--check",
         str(results / KILLED)], capture_output=True, text=True, check=True, env={**os.environ, "LEM_CORPUS_NO_VENV": "1"},
    )
    said = json.loads(out.stdout)
    assert said["skip_set_size"] == 1
    assert said["find_resumable_study"] == KILLED


def test_resume_runs_llem_on_the_saved_config_from_the_project_folder(results: Path, tmp_path: Path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    llem = bin_dir / "llem"
    llem.write_text("#!/bin/sh\nexit 0\n")
    llem.chmod(0o755)
    store = StateStore(results)
    name = next(k for k, v in EXPECT["studies"].items() if v["status"] == "timed_out")
    monkeypatch.setenv("PATH", str(bin_dir))
    plan = plan_resume(store, name, probe=Probe())
    study = (results / name).resolve()
    assert plan.allowed, plan.refusal
    assert plan.argv == ("llem", "run", f"{study}/_study-artefacts/study_config.yaml", "--resume-dir", str(study))
    assert plan.cwd == results.parent.resolve()
    assert (plan.runs_to_run, plan.runs_skipped) == (2, 1)


def test_resume_without_llem_is_refused_naming_the_command(results: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    name = next(k for k, v in EXPECT["studies"].items() if v["status"] == "interrupted")
    plan = plan_resume(StateStore(results), name, probe=Probe())
    assert not plan.allowed and "llem: command not found" in plan.refusal
    done = next(k for k, v in EXPECT["studies"].items() if v["status"] == "completed")
    assert "already completed" in plan_resume(StateStore(results), done, probe=Probe()).refusal


def _manifest(results: Path) -> dict:
    return json.loads((results / KILLED / "manifest.json").read_text())


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda m: m.update(schema_version="3.0"), "unknown schema_version '3.0'"),
        (lambda m: m.update(completed=2), "counts contradict the entries: completed is 2, the entries give 1"),
        (lambda m: m.update(total_experiments=9), "total_experiments is 9"),
        (lambda m: m["experiments"][0].update(status="exploded"), "experiments.0.status"),
        (lambda m: m["experiments"][0].update(log_file="../../etc/passwd"), "points outside the study folder"),
        (lambda m: m["experiments"][0].update(log_file="/dev/zero"), "points outside the study folder"),
    ],
)
def test_bad_manifests_are_broken_rows_with_the_reason(results: Path, change, reason: str) -> None:
    raw = _manifest(results)
    change(raw)
    (results / KILLED / "manifest.json").write_text(json.dumps(raw, indent=2))
    store = StateStore(results, read_only=True)
    store.scan()
    entry = store.entries[KILLED]
    assert isinstance(entry, BrokenRecord) and reason in entry.reason


def test_a_truncated_manifest_is_a_broken_row(results: Path) -> None:
    path = results / KILLED / "manifest.json"
    path.write_bytes(path.read_bytes()[:200])
    store = StateStore(results, read_only=True)
    store.scan()
    assert "truncated JSON" in store.entries[KILLED].reason


def test_a_study_folder_linked_from_outside_is_not_read(results: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    shutil.copytree(results / KILLED, outside)
    (results / "linked").symlink_to(outside)
    store = StateStore(results, read_only=True)
    store.scan()
    assert store.entries["linked"].reason == "study folder points outside the directory"


def test_list_json_carries_hashes_and_process_rows(results: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "list", "--json", "--source", str(results)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )
    rows = {row["key"]: row for row in json.loads(out.stdout)}
    killed = rows[KILLED]
    assert killed["config_hash"] and "model_name" in killed
    assert [p["status"] for p in killed["processes"]] == EXPECT["studies"][KILLED]["entries"]
    assert killed["processes"][0]["label"].endswith("(cycle 1)")


async def _first_batch_with(root, stop, fresh, predicate, timeout=20.0):
    import asyncio

    from runtime.watcher import watch_directory

    async def main():
        while True:
            async for paths in watch_directory(root, stop, fresh):
                if predicate(paths):
                    return paths
    return await asyncio.wait_for(main(), timeout)


async def test_the_watcher_sees_a_new_study_folder_and_then_its_manifest(tmp_path):
    """A real inotify watch: a study folder made after the watch began is watched, so the manifest
    written into it later is seen (without watching every other subfolder)."""
    import asyncio

    results = tmp_path / "results"
    results.mkdir()
    stop = asyncio.Event()
    fresh: set = set()

    async def make_study():
        await asyncio.sleep(0.3)
        (results / "study_2026").mkdir()
        await asyncio.sleep(0.5)
        (results / "study_2026" / "manifest.json").write_text("{}")

    writer = asyncio.create_task(make_study())
    seen = await _first_batch_with(results, stop, fresh, lambda paths: any(p.endswith("manifest.json") for p in paths))
    await writer
    stop.set()
    assert str(results / "study_2026" / "manifest.json") in seen
