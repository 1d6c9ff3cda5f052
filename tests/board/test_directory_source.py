"""The state directory as a source: deltas, hints, and one input that never stops a scan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import state.store
from state.record import BrokenRecord, ExperimentRecord
from state.sources import MARK_STALE, RESUME, STOP, DirectorySource, Source, source_name
from tests.dashboard.conftest import DEAD_PID, ScriptedProbe, FROZEN, native_doc, populate, write_raw


def test_is_a_source(tmp_path: Path):
    assert isinstance(DirectorySource(tmp_path), Source)


def test_names(tmp_path: Path):
    assert source_name(tmp_path / "project" / ".state") == "project"
    assert source_name(tmp_path / "results") == "results"


def test_initial_batches_bring_every_file_once(tmp_path: Path):
    populate(tmp_path)
    source = DirectorySource(tmp_path, read_only=True)
    deltas = list(source.initial_batches(batch=2))
    keys = [k for d in deltas for k in d.upserts]
    assert sorted(keys) == ["broken", "lem-interrupted", "sweep-alive", "sweep-dead", "sweep-done", "sweep-failed"]
    assert not source.reconcile()  # nothing changed since


def _read_ahead(source: DirectorySource) -> None:
    source.read_first_screen(ScriptedProbe(), lambda: FROZEN)
    assert source.wait_first_screen(10.0)


def test_a_first_screen_read_ahead_and_shown_is_not_brought_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    populate(tmp_path)
    monkeypatch.setattr("state.sources.directory.FIRST_SCREEN_BATCH", 3)
    source = DirectorySource(tmp_path, read_only=True)
    _read_ahead(source)
    first = source.first_screen()
    assert first is not None and len(first.upserts) == 3
    # Its running rows come judged, as the App's own posts judge them.
    assert set(first.verdicts) == {k for k, e in first.upserts.items() if isinstance(e, ExperimentRecord) and e.status == "running"}
    assert source.first_screen() is None  # handed over once
    later = list(source.initial_batches(batch=2))
    keys = [k for d in [first, *later] for k in d.upserts]
    assert sorted(keys) == ["broken", "lem-interrupted", "sweep-alive", "sweep-dead", "sweep-done", "sweep-failed"]
    assert not source.reconcile()
    # A first scan made again (a new store) brings every file: the batch handed over once is not skipped twice.
    source.store.entries.clear()
    source.store._sigs.clear()
    assert sum(len(d.upserts) for d in source.initial_batches(batch=2)) == 6


def test_a_first_screen_read_ahead_but_not_taken_starts_the_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    populate(tmp_path)
    monkeypatch.setattr("state.sources.directory.FIRST_SCREEN_BATCH", 4)
    source = DirectorySource(tmp_path, read_only=True)
    _read_ahead(source)
    deltas = list(source.initial_batches(batch=1))
    assert [len(d.upserts) for d in deltas] == [4, 1, 1, 0]  # the read-ahead batch, then one file each, then the rescan
    assert deltas[0].verdicts  # sweep-alive and sweep-dead are among the first four (names sorted)


def test_a_failed_read_ahead_fails_the_first_scan_in_its_own_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    populate(tmp_path)
    source = DirectorySource(tmp_path, read_only=True)
    monkeypatch.setattr(source.store, "candidate_names", lambda: (_ for _ in ()).throw(Boom("listing failed")))
    source.read_first_screen(ScriptedProbe(), lambda: FROZEN)
    assert source.wait_first_screen(10.0)
    assert source.first_screen() is None  # nothing to show early
    with pytest.raises(Boom, match="listing failed"):
        next(source.initial_batches())  # raised where the App's scan worker reports it


def test_waiting_for_a_slow_read_ahead_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import threading

    populate(tmp_path)
    source = DirectorySource(tmp_path, read_only=True)
    release = threading.Event()
    listing = source.store.candidate_names
    monkeypatch.setattr(source.store, "candidate_names", lambda: release.wait(10) and listing())
    source.read_first_screen(ScriptedProbe(), lambda: FROZEN)
    assert not source.wait_first_screen(0.05)  # a hung file system: the screen opens without it
    assert source.first_screen() is None
    release.set()
    keys = [k for d in source.initial_batches() for k in d.upserts]
    assert len(keys) == len(set(keys)) == 6


def test_hint_reads_only_what_changed(tmp_path: Path):
    source = DirectorySource(tmp_path)
    list(source.initial_batches())
    write_raw(tmp_path, native_doc("new", "running", pid=DEAD_PID))
    delta = source.hint({str(source.root / "new.json"), str(source.root / "other.txt")})
    assert list(delta.upserts) == ["new"] and not delta.removed
    (tmp_path / "new.json").unlink()
    assert source.hint({str(source.root / "new.json")}).removed == ("new",)


def test_judge_only_running(tmp_path: Path):
    populate(tmp_path)
    source = DirectorySource(tmp_path)
    list(source.initial_batches())
    verdicts = source.judge(source.entries().values(), ScriptedProbe(), FROZEN)
    assert set(verdicts) == {"sweep-alive", "sweep-dead"}
    assert verdicts["sweep-dead"].is_dead and verdicts["sweep-alive"].is_alive


def test_allowed_actions(tmp_path: Path):
    populate(tmp_path)
    writable, observer = DirectorySource(tmp_path), DirectorySource(tmp_path, read_only=True)
    list(writable.initial_batches())
    list(observer.initial_batches())
    assert writable.allowed_actions(writable.entries()["sweep-dead"]) == {RESUME, MARK_STALE, STOP}
    assert not writable.allowed_actions(writable.entries()["broken"])
    assert not observer.allowed_actions(observer.entries()["sweep-dead"])


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("error", [Boom("reader bug"), MemoryError(), RecursionError("deep"), ValueError("x" * 1000)])
def test_any_exception_from_the_reader_breaks_one_file_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error):
    populate(tmp_path)
    real = state.store.read_record

    def faulty(key, path, sig, data):
        if key == "sweep-done":
            raise error
        return real(key, path, sig, data)

    monkeypatch.setattr(state.store, "read_record", faulty)
    source = DirectorySource(tmp_path, read_only=True)
    entries = {k: e for d in source.initial_batches() for k, e in d.upserts.items()}
    assert isinstance(entries["sweep-done"], BrokenRecord)
    assert type(error).__name__ in entries["sweep-done"].reason
    assert len(entries["sweep-done"].reason) < 400
    assert all(isinstance(entries[k], ExperimentRecord) for k in ("sweep-alive", "sweep-dead", "sweep-failed"))


def test_a_huge_json_number_is_a_broken_file_not_a_failed_scan(tmp_path: Path):
    populate(tmp_path)
    (tmp_path / "digits.json").write_text('{"experiment_id": "d", "status": "running", "cycle_id": ' + "9" * 5000 + "}")
    source = DirectorySource(tmp_path, read_only=True)
    entries = {k: e for d in source.initial_batches() for k, e in d.upserts.items()}
    assert isinstance(entries["digits"], BrokenRecord)
    assert len(entries) == 7


def test_the_list_command_shows_the_broken_file_and_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    from app.cli import main

    populate(tmp_path)
    (tmp_path / "digits.json").write_text('{"experiment_id": "d", "cycle_id": ' + "9" * 5000 + "}")
    assert main(["list", "--json", "--source", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    by_key = {o["key"]: o for o in out}
    assert by_key["digits"]["status"] == "broken" and by_key["digits"]["error"]
    assert by_key["sweep-done"]["status"] == "completed"


def test_list_json_over_two_sources(tmp_path: Path, capsys):
    from app.cli import main

    a, b = tmp_path / "a" / ".state", tmp_path / "b" / ".state"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    write_raw(a, native_doc("same-id", "completed", pid=DEAD_PID, done=4))
    write_raw(b, native_doc("same-id", "failed", pid=DEAD_PID, done=3, failed=1))
    write_raw(b, native_doc("only-b", "completed", pid=DEAD_PID, done=4))
    assert main(["list", "--json", "--source", str(a), "--state-dir", str(b)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted((o["source"], o["key"], o["status"]) for o in out) == [
        ("a", "same-id", "completed"), ("b", "only-b", "completed"), ("b", "same-id", "failed")
    ]
    assert main(["list", "--source", str(a), "--source", str(b)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[0] == "SOURCE"


async def test_dashboard_shows_two_directories_in_one_table(tmp_path: Path):
    from state.board import BoardRow
    from tests.dashboard.helpers import make_app, wait_for
    from widgets.experiment_table import ExperimentTable

    a, b = tmp_path / "lab" / ".state", tmp_path / "gpu1" / ".state"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    write_raw(a, native_doc("sweep", "completed", pid=DEAD_PID, done=4))
    write_raw(b, native_doc("sweep", "failed", pid=DEAD_PID, done=3, failed=1))
    app = make_app(a, read_only=True, extra_sources=(b,))
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: app.scan_complete and len(app.main.table.keys) == 2, what="both rows")
        table = app.main.query_one(ExperimentTable)
        assert set(table.keys) == {"lab:sweep", "gpu1:sweep"}
        assert table.columns[0].key == "source"
        row = table.get_row("gpu1:sweep")
        assert isinstance(row, BoardRow) and row.source == "gpu1" and row.entry.status == "failed"
        header = "".join(s.text for s in table.render_line(0))
        assert header.startswith("source")
        await pilot.press("slash", *"gpu1", "enter")
        await wait_for(pilot, lambda: table.keys == ["gpu1:sweep"], what="filter by source")


def test_open_source_names_what_it_could_not_open(tmp_path: Path):
    from state.sources import SourceError, open_source, open_sources

    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(SourceError, match="no state directory"):
        open_source(tmp_path / "missing")
    with pytest.raises(SourceError, match="is not a directory"):
        open_source(tmp_path / "file.txt")
    (tmp_path / "a" / ".state").mkdir(parents=True)
    (tmp_path / "b" / "a" / ".state").mkdir(parents=True)
    sources = open_sources([tmp_path / "a" / ".state", tmp_path / "b" / "a" / ".state"])
    assert [s.name for s in sources] == ["a", "a-2"]


def test_a_registered_kind_is_tried_before_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from state.sources import open_source, opening

    class Fake:
        def __init__(self, spec, name):
            self.spec, self.name = spec, name

    monkeypatch.setattr(opening, "_OPENERS", [])
    opening.register_opener("fake", lambda spec, ro, name: Fake(spec, name) if spec.startswith("fake://") else None)
    found = open_source("fake://host/0", name="x")
    assert isinstance(found, Fake) and found.spec == "fake://host/0"
    assert opening.default_name("redis://user@hub.example:6379/0") == "hub.example:6379"
    assert isinstance(open_source(tmp_path), DirectorySource)


def test_cli_refuses_a_missing_source(tmp_path: Path, capsys):
    from app.cli import main

    assert main(["list", "--source", str(tmp_path / "missing")]) == 3
    assert "no state directory" in capsys.readouterr().err
    assert main([str(tmp_path / "missing")]) == 3
