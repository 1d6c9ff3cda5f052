"""The inspector's pure parts: finding a function's text, run rows from raw JSON, search, paths."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import pytest

from app.screens.inspector.runs import runs_view
from state.inspection import display_path, function_source, read_snapshot, runs_from_json
from state.hashing import source_hash
from tests.inspector.fixtures import create_experiment
from widgets.raw_json import RawText
from widgets.run_table import build_run_table, format_value

MODULE = textwrap.dedent(
    '''
    import functools


    def plain(x):
        return x + 1


    @functools.lru_cache(maxsize=None)
    @staticmethod
    def decorated(x):
        """Decorators belong to the source, as inspect.getsource has them."""
        return x * 2


    class Study:
        def step(self, params):
            def inner():
                return params
            return inner()

        async def astep(self):
            return 1
    '''
).lstrip()


@pytest.fixture
def module(tmp_path: Path):
    import importlib.util

    path = tmp_path / "mod_for_source.py"
    path.write_text(MODULE)
    spec = importlib.util.spec_from_file_location("mod_for_source", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", ["plain", "Study.step", "Study.astep"])
def test_function_source_matches_inspect_getsource(module, name: str):
    obj = module
    for part in name.split("."):
        obj = getattr(obj, part)
    expected = inspect.getsource(obj)
    assert function_source(MODULE, obj.__qualname__, obj.__code__.co_firstlineno) == expected


def test_function_source_includes_decorators(module):
    found = function_source(MODULE, "decorated", None)
    assert found is not None and found.startswith("@functools.lru_cache(maxsize=None)\n@staticmethod\ndef decorated")
    assert found.rstrip().endswith("return x * 2")


def test_function_source_for_nested_function_by_qualname(module):
    inner = module.Study().step({"a": 1})
    assert inner == {"a": 1}
    found = function_source(MODULE, "Study.step.<locals>.inner", None)
    assert found is not None and found.strip().startswith("def inner():")


def test_function_source_missing_and_unparsable():
    assert function_source(MODULE, "gone", None) is None
    assert function_source(MODULE, "Study.gone", None) is None
    with pytest.raises(SyntaxError):
        function_source("def broken(:\n", "broken", 1)


def test_source_hash_changes_only_with_the_function():
    before = function_source(MODULE, "plain", None)
    other_edited = function_source(MODULE.replace("return x * 2", "return x * 3"), "plain", None)
    edited = function_source(MODULE.replace("return x + 1", "return x + 2"), "plain", None)
    assert before is not None and other_edited is not None and edited is not None
    assert source_hash(other_edited) == source_hash(before)
    assert source_hash(edited) != source_hash(before)


def test_run_rows_from_json_tolerate_malformed_entries():
    data = build_run_table(
        [
            {"id_run": "a", "status": "failed", "params": {"lr": 0.1}, "exception": {"type": "E", "message": "bad\nline"}},
            "not an object",
            {"id_run": "a", "params": "not a dict", "fields": {"loss": 1.5}},
            {"status": "completed", "attempt": 2, "current_step": "fit"},
        ],
        grid_keys=["lr"],
    )
    assert [c.label for c in data.columns] == ["status", "run", "proc", "try", "step", "lr", "loss", "error"]
    assert [r.key for r in data.rows] == ["a", "?1", "a@2", "?3"]
    assert data.rows[0].cells[-1] == "E: bad line"
    assert data.rows[1].status == "pending"
    assert data.rows[2].cells[5:7] == ("", "1.5")
    assert data.rows[3].cells[:5] == ("completed", "?3", "", "2", "fit")


def test_runs_from_json_only_for_expwatch_documents():
    assert runs_from_json(b'{"experiment_id": "x", "status": "running"}') is None
    assert runs_from_json(b"[1, 2]") is None
    assert runs_from_json(b"{not json") is None
    empty = runs_from_json(b'{"schema": "expwatch.experiment/1", "experiment_id": "x", "grid": {"lr": [1]}}')
    assert empty is not None and empty.runs == [] and empty.grid_keys == ("lr",)


def test_format_value():
    assert format_value(None) == ""
    assert format_value(True) == "true"
    assert format_value(0.1 + 0.2) == "0.3"
    assert format_value("a\nb") == "a b"
    assert format_value({"k": [1, 2]}) == '{"k":[1,2]}'


def test_raw_text_find_reports_lines_and_columns():
    raw = RawText.from_text('{\n  "a": "Alpha",\n  "b": "alphabet"\n}\n')
    assert raw.lines[1] == '  "a": "Alpha",'
    assert raw.find("ALPHA") == [(1, 8), (2, 8)]
    assert raw.find("") == [] and raw.find("zzz") == []


def test_raw_text_shows_control_characters_as_one_cell_each():
    raw = RawText.from_text('{"a":\t"x\x07y"}\r\n')
    assert raw.lines[0] == '{"a": "x\ufffdy"}'
    assert raw.find("y") == [(0, 9)]


def test_display_path_is_relative_to_the_project(tmp_path: Path):
    assert display_path(tmp_path / "study" / "s.py", tmp_path) == "study/s.py"
    assert display_path("relative/s.py", tmp_path) == "relative/s.py"
    assert display_path(Path.home() / "x.py", tmp_path) == "~/x.py"
    assert display_path("/elsewhere/x.py", tmp_path) == "/elsewhere/x.py"


def test_read_snapshot_of_a_bad_key_is_a_reason_not_an_error():
    store, key, _ = create_experiment()
    assert read_snapshot(store, "../escape").reason
    assert read_snapshot(store, "missing").reason == "the file no longer exists"
    snap = read_snapshot(store, key)
    assert snap.reason is None and snap.runs_json is not None and len(snap.runs_json.runs) == 6
    runs = runs_view(snap)
    assert runs is not None and len(runs.table.rows) == 6
    run = runs.run(snap, "r-0004")
    assert run is not None and run.exception is not None
