"""``expwatch list``/``show`` on an MLtraq database, by path and by ``sqlite:///`` URL."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from pathlib import Path

import pytest

from app.cli import main

DATA = Path(__file__).parent / "data"
EXPECTED = json.loads((DATA / "expected.json").read_text())


@pytest.mark.parametrize("spec", [str(DATA / "runs.db"), f"sqlite:///{DATA / 'runs.db'}"])
def test_list_json_has_every_experiment_with_mltraqs_run_count(spec: str, capsys):
    assert main(["list", "--json", "--source", spec]) == 0
    listed = {o["experiment_id"]: o for o in json.loads(capsys.readouterr().out)}
    assert {k: o["runs_total"] for k, o in listed.items()} == {k: e["run_count"] for k, e in EXPECTED["runs.db"].items()}
    assert {o["source"] for o in listed.values()} == {"runs.db"} and listed["grid"]["format"] == "mltraq"


def test_show_json_has_every_runs_fields_and_the_codelog(capsys):
    assert main(["show", "values", "--json", "--source", str(DATA / "runs.db")]) == 0
    state = json.loads(capsys.readouterr().out)["state"]
    runs = {r["id_run"]: r["fields"] for r in state["runs"]}
    assert runs.keys() == EXPECTED["runs.db"]["values"]["runs"].keys()
    for ident, fields in runs.items():
        want = EXPECTED["runs.db"]["values"]["runs"][ident]
        assert fields["nested"] == want["nested"]
        if importlib.util.find_spec("numpy"):
            assert fields["array"] == want["array"]
        else:
            assert fields["array"].endswith("bytes of numpy.ndarray")
    assert main(["show", "grid", "--json", "--source", str(DATA / "runs.db")]) == 0
    assert [s["name"] for s in json.loads(capsys.readouterr().out)["state"]["steps"]] == ["train", "evaluate"]


def test_show_unknown_experiment_and_a_non_mltraq_database_exit_not_found(tmp_path: Path, capsys):
    assert main(["show", "nope", "--source", str(DATA / "runs.db")]) == 3
    assert "no experiment 'nope' in" in capsys.readouterr().err
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)")
    assert main(["list", "--source", str(other)]) == 3
    assert "not MLtraq's" in capsys.readouterr().err


def test_show_on_a_database_that_cannot_be_read_is_an_error_not_a_miss(tmp_path: Path, capsys):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    assert main(["show", "values", "--source", str(garbage)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"expwatch: cannot read {garbage}: ") and "Traceback" not in err


@pytest.mark.parametrize("form", ["positional", "--source"])
def test_snapshot_shows_every_source_a_state_directory_and_an_mltraq_database(form: str, tmp_path: Path, capsys):
    """Every source given is in the one table, each row with its source; none but the first was (and an
    MLtraq database was refused as "not a directory")."""
    from tests.hardening.helpers import write_lem

    state = tmp_path / "s1"
    state.mkdir()
    write_lem(state, "exp-running", status="running")
    specs = [str(state), str(DATA / "runs.db")]
    argv = ["snapshot", *specs] if form == "positional" else ["snapshot", *(a for s in specs for a in ("--source", s))]
    assert main(argv) == 0
    out = capsys.readouterr().out
    head, labels, *rows = out.split("\n\n")[0].splitlines()
    assert head.startswith(f"{state}  {DATA / 'runs.db'}: ")
    assert labels.split()[:2] == ["source", "experiment"]
    shown = {(r.split()[0], r.split()[1]) for r in rows}
    assert shown == {("s1", "exp-running")} | {("runs.db", k) for k in EXPECTED["runs.db"]}


def test_snapshot_of_an_mltraq_database_alone(capsys):
    assert main(["snapshot", "--md", str(DATA / "runs.db")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"**{DATA / 'runs.db'}**: ") and "no experiments" not in out
    assert {line.split(" | ")[0].removeprefix("| ") for line in out.splitlines()[4:] if line.startswith("| ")} == set(EXPECTED["runs.db"])


@pytest.mark.parametrize("command", [["mark-stale", "grid"], ["mark-stale", "--all"], ["resume", "grid"], ["stop", "grid"], ["kv", "grid"]])
@pytest.mark.parametrize("typed", ["runs.db", "sqlite:///runs.db"])
def test_a_command_on_a_state_directory_refuses_an_mltraq_database_naming_it_as_typed(
    command: list[str], typed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    (tmp_path / "runs.db").write_bytes((DATA / "runs.db").read_bytes())
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([*command, "--source", typed]) == 2
    err = capsys.readouterr().err
    assert err == f"expwatch: {command[0]} works on a state directory; {typed} is an MLtraq database, which expwatch only reads\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_run_refuses_an_mltraq_database_and_writes_nothing(tmp_path: Path):
    from tests.runtime.helpers import expwatch, write_study

    (tmp_path / "runs.db").write_bytes((DATA / "runs.db").read_bytes())
    study = write_study(tmp_path)
    before = (tmp_path / "runs.db").read_bytes()
    done = expwatch("run", study, "--source", "runs.db", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "FileExistsError" not in done.stderr
    assert done.stderr == "expwatch: run writes to a state directory; runs.db is an MLtraq database, which expwatch only reads\n"
    assert (tmp_path / "runs.db").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db", "study.py"]


def test_a_spec_that_looks_like_a_database_but_is_none_says_why_as_list_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["mark-stale", "grid", "--source", "sqlite:///nope.db"]) == 3
    assert capsys.readouterr().err == "expwatch: no database at nope.db (from sqlite:///nope.db)\n"
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)")
    assert main(["stop", "grid", "--source", "other.db"]) == 3
    assert "not MLtraq's" in capsys.readouterr().err


def test_list_status_takes_every_word_the_table_shows(capsys):
    assert main(["list", "--json", "--status", "unknown", "--source", str(DATA / "runs.db")]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed and {o["status"] for o in listed} == {"unknown"}
    studies = Path(__file__).parents[1] / "lem_studies" / "corpus" / "results"
    assert main(["list", "--json", "--status", "timed_out,circuit_breaker", "--source", str(studies)]) == 0
    assert sorted(o["raw_status"] for o in json.loads(capsys.readouterr().out)) == ["circuit_breaker", "timed_out"]
    assert main(["list", "--status", "", "--source", str(DATA / "runs.db")]) == 2
    assert "--status needs a status" in capsys.readouterr().err


def test_show_text_says_the_first_error_as_json_does(capsys):
    assert main(["show", "failing", "--source", str(DATA / "runs.db")]) == 0
    assert "\nerror        diverged at step 3\n" in capsys.readouterr().out
