"""The MLtraq source on databases MLtraq wrote, and on hostile ones: rows, values, steps, no writes."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from state.mltraq.decode import Opaque, UnreadableValue
from state.mltraq.experiment import MltraqExperiment
from state.record import BrokenRecord, ExperimentRecord
from state.sources import SourceError, open_source, open_sources
from state.sources.mltraq import MltraqSource

from tests.mltraq.hostile import add_experiment, bunch, create, datapak, q, touch_payload

DATA = Path(__file__).parent / "data"
EXPECTED = json.loads((DATA / "expected.json").read_text())
DECODES_ARRAYS = all(importlib.util.find_spec(m) is not None for m in ("numpy", "pyarrow"))


def scanned(path: Path | str) -> MltraqSource:
    source = open_source(str(path))
    assert isinstance(source, MltraqSource)
    list(source.initial_batches())
    return source


def full(source: MltraqSource, key: str) -> MltraqExperiment:
    snap = source.snapshot_reader().read(key)
    assert snap.reason is None, snap.reason
    assert isinstance(snap.model, MltraqExperiment)
    return snap.model


def same_value(shown, loaded) -> bool:
    """What expwatch shows equals what MLtraq's loader returned (arrays/frames: their size, without numpy/pyarrow)."""
    if isinstance(shown, Opaque) and not isinstance(shown, UnreadableValue) and not DECODES_ARRAYS:
        return "bytes of " in shown
    if isinstance(shown, dict) and isinstance(loaded, dict):
        return shown.keys() == loaded.keys() and all(same_value(shown[k], loaded[k]) for k in shown)
    if isinstance(shown, list) and isinstance(loaded, list):
        return len(shown) == len(loaded) and all(map(same_value, shown, loaded))
    return shown == loaded


@pytest.mark.parametrize("db", ["runs.db", "zlib.db"])
def test_every_experiment_run_and_field_as_mltraqs_loader_reads_it(db: str):
    source = scanned(DATA / db)
    expected = EXPECTED[db]
    entries = source.entries()
    assert set(entries) == set(expected)
    for name, want in expected.items():
        record = entries[name]
        assert isinstance(record, ExperimentRecord) and record.runs_total == want["run_count"]
        model = full(source, name)
        assert same_value(model.fields, want["fields"])
        runs = {r.id_run: r.fields for r in model.runs}
        assert runs.keys() == want["runs"].keys()
        for ident, fields in runs.items():
            assert same_value(fields, want["runs"][ident]), (name, ident)
    assert source.allowed_actions(next(iter(entries.values()))) == frozenset()


def test_status_comes_from_the_fields_or_says_none_was_recorded():
    entries = scanned(DATA / "runs.db").entries()
    grid, failing, empty = entries["grid"], entries["failing"], entries["empty"]
    assert (grid.status, grid.runs_done, grid.runs_total) == ("completed", 6, 6)
    assert (failing.status, failing.runs_failed, failing.runs_done) == ("failed", 2, 2)
    assert failing.error_message and failing.error_message.startswith("diverged at step")
    assert (empty.status, empty.raw_status) == ("unknown", "no status recorded")


def test_codelog_is_the_step_source():
    steps = full(scanned(DATA / "runs.db"), "grid").steps
    assert [s.name for s in steps] == ["train", "evaluate"]
    assert steps[0].pathname == "write_databases.py" and steps[0].code.startswith("def train(run):")
    assert steps[0].runs == 6 and steps[0].lineno


def test_every_column_of_the_table_even_ones_the_first_run_lacks(tmp_path: Path):
    db = tmp_path / "altered.db"
    conn = create(db)
    add_experiment(conn, "grown", [{"x": 1}, {"x": 2}])
    conn.execute('ALTER TABLE experiment_grown ADD COLUMN "late col" TEXT')
    conn.execute("UPDATE experiment_grown SET \"late col\" = 'only me' WHERE x = 2")
    model = full(scanned(db), "grown")
    assert model.columns == ["id_experiment", "id_run", "x", "late col"]
    assert [r.fields["late col"] for r in model.runs] == [None, "only me"]


def test_hostile_values_execute_nothing_and_show_why(tmp_path: Path):
    db, marker = tmp_path / "hostile.db", tmp_path / "marker"
    conn = create(db)
    add_experiment(
        conn, "evil", [{"payload": touch_payload(marker), "cut": datapak(bunch({"a": list(range(50))}))[:-9], "big": None}],
        fields=touch_payload(marker), unsafe=touch_payload(marker),
    )
    conn.execute("UPDATE experiment_evil SET big = zeroblob(100 * 1024 * 1024)")
    conn.close()
    source = scanned(db)
    model = full(source, "evil")
    run = model.runs[0].fields
    assert isinstance(model.fields, UnreadableValue) and "global" in model.fields
    assert isinstance(run["payload"], UnreadableValue) and "global" in run["payload"]
    assert isinstance(run["cut"], UnreadableValue) and "truncated" in run["cut"]
    assert run["big"] == "104,857,600 bytes, over the 16 MiB limit: not read"
    assert not marker.exists()


def test_sql_looking_names_stay_names(tmp_path: Path):
    db = tmp_path / "names.db"
    conn = create(db)
    name = 'x"; DROP TABLE experiments; --'
    add_experiment(conn, name, [{'col"); DROP TABLE experiments; --': 7}], table=f"experiment_{name}")
    conn.close()
    source = scanned(db)
    assert source.entries()[name].runs_total == 1
    assert full(source, name).runs[0].fields == {'col"); DROP TABLE experiments; --': 7}
    assert sqlite3.connect(db).execute("SELECT count(*) FROM experiments").fetchone() == (1,)


def test_a_non_mltraq_sqlite_file_is_a_one_line_error_and_other_files_are_not_claimed(tmp_path: Path):
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE experiments (id INTEGER)")
    with pytest.raises(SourceError, match="not MLtraq's"):
        open_source(str(other))
    with pytest.raises(SourceError, match="not MLtraq's"):
        open_source(f"sqlite:///{other}")
    text = tmp_path / "notes.db"
    text.write_text("not a database")
    with pytest.raises(SourceError, match="is not a directory"):
        open_source(str(text))
    with pytest.raises(SourceError, match="no database at"):
        open_source(f"sqlite:///{tmp_path / 'missing.db'}")


def test_url_and_path_open_the_same_database_with_the_files_name():
    by_path, by_url = open_sources([str(DATA / "runs.db"), f"sqlite:///{DATA / 'zlib.db'}"])
    assert (by_path.name, by_url.name) == ("runs.db", "zlib.db")
    assert isinstance(by_url, MltraqSource)


def test_a_truncated_database_is_a_broken_row(tmp_path: Path):
    db = tmp_path / "cut.db"
    db.write_bytes((DATA / "runs.db").read_bytes()[: 3 * 4096])
    entries = scanned(db).entries()
    assert list(entries) == ["cut.db"]
    broken = entries["cut.db"]
    assert isinstance(broken, BrokenRecord) and "malformed" in broken.reason


def test_a_locked_database_keeps_its_rows_then_says_why(tmp_path: Path):
    db = tmp_path / "locked.db"
    shutil.copy(DATA / "runs.db", db)
    clock = [0.0]
    source = MltraqSource(db, clock=lambda: clock[0])
    list(source.initial_batches())
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        assert not source.reconcile()  # the lock passes: the last rows stay, nothing flashes
        assert set(source.entries()) == set(EXPECTED["runs.db"])
        clock[0] = 60.0
        source.reconcile()
        assert "locked" in source.entries()["locked.db"].reason
    finally:
        writer.execute("ROLLBACK")
    delta = source.poll()
    assert set(source.entries()) == set(EXPECTED["runs.db"]) and "locked.db" in delta.removed


def test_reading_writes_no_byte(tmp_path: Path):
    db = tmp_path / "runs.db"
    shutil.copy(DATA / "runs.db", db)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    mtime = db.stat().st_mtime_ns
    source = scanned(db)
    for key in source.entries():
        reader = source.snapshot_reader()
        snap = reader.read(key)
        reader.extras(snap)
        assert not reader.changed(snap)
    source.poll()
    source.db.close()
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    assert after == before and db.stat().st_mtime_ns == mtime


def test_kind_of_tells_kinds_as_open_source_does(tmp_path: Path):
    from state.sources.opening import kind_of

    assert kind_of(tmp_path) is None and kind_of(tmp_path / "missing") is None
    (tmp_path / "notes.txt").write_text("text")
    assert kind_of(tmp_path / "notes.txt") is None
    db = tmp_path / "runs.db"
    shutil.copy(DATA / "runs.db", db)
    for spec in (str(db), f"sqlite:///{db}"):
        kind = kind_of(spec)
        assert kind is not None and (kind.name, kind.what) == ("mltraq", "an MLtraq database")
    kind = kind_of("redis://127.0.0.1:1/0")  # never connected to
    assert kind is not None and (kind.name, kind.what) == ("redis", "a Redis hub")
    with pytest.raises(SourceError, match="no database"):
        kind_of(f"sqlite:///{tmp_path / 'missing.db'}")
