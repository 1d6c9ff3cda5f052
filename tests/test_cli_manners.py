"""The command line's manners: its help lists the commands, usage errors exit 2 with the right usage, one message per mistake."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.cli import main
from app.commands.gpus import render_table
from runtime.gpu import make_gpu_source

from tests.runtime.helpers import MINIMAL_STUDY, make_native, write_study


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return int(code or 0), out, err


@pytest.mark.parametrize("argv", [["-h"], ["--help"], ["help"]])
def test_help_lists_every_command(argv, capsys):
    code, out, _ = run_main(argv, capsys)
    assert code == 0
    for name in ("list", "show", "stop", "resume", "mark-stale", "serve", "gpus", "run"):
        assert f"    {name}" in out
    assert "expwatch [SOURCE ...]" in out


def test_version(capsys):
    code, out, _ = run_main(["--version"], capsys)
    assert code == 0 and out.startswith("expwatch ")


def test_an_unknown_word_is_an_unknown_command_with_the_closest(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(["lsit"], capsys)
    assert code == 2 and "unknown command 'lsit'" in err and "expwatch list" in err
    code, _, err = run_main(["frobnicate"], capsys)
    assert code == 2 and "unknown command 'frobnicate'" in err and "no state directory" not in err


def test_a_path_like_word_is_still_a_missing_directory(capsys, tmp_path):
    code, _, err = run_main([str(tmp_path / "missing")], capsys)
    assert code == 3 and "no state directory at" in err


@pytest.mark.parametrize(
    "argv, usage, says",
    [
        (["--poll", "0", "."], "usage: expwatch dashboard", "argument --poll: takes a positive number"),
        (["--refresh", "-1", "."], "usage: expwatch dashboard", "argument --refresh"),
        (["gpus", "--simulate", "-3"], "usage: expwatch gpus", "argument --simulate"),
        (["run", "--processes", "0", "study.py"], "usage: expwatch run", "argument --processes/-p"),
        (["run", "--gpus", "x", "study.py"], "usage: expwatch run", "argument --gpus"),
        (["list", "--frobnicate"], "usage: expwatch list", "unrecognized arguments: --frobnicate"),
        (["stop"], "usage: expwatch stop", "required: id"),
    ],
)
def test_usage_errors_exit_2_with_their_commands_usage(argv, usage, says, capsys):
    code, _, err = run_main(argv, capsys)
    assert code == 2
    assert err.startswith(usage) and says in err
    assert "--refresh and --poll" not in err


@pytest.mark.parametrize("argv", [["list", "--source", "{f}"], ["snapshot", "{f}"], ["show", "x", "--source", "{f}"],
                                  ["serve", "{f}"], ["{f}"], ["stop", "x", "--source", "{f}"]])
def test_a_file_where_a_directory_is_expected_is_one_message(argv, tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("not a directory")
    code, _, err = run_main([a.format(f=path) for a in argv], capsys)
    assert code == 3
    assert err.strip().startswith(f"expwatch: {path} is not a directory")


def test_list_status_stale(tmp_path, capsys):
    state = tmp_path / "state"
    state.mkdir()
    study = write_study(tmp_path, MINIMAL_STUDY)
    make_native(state, study, "dead-one", status="running")  # its recorded owners are dead
    make_native(state, study, "done-one", status="completed")
    code, out, _ = run_main(["list", "--source", str(state), "--status", "stale", "--json"], capsys)
    assert code == 0
    assert [e["id"] if "id" in e else e["experiment_id"] for e in json.loads(out)] == ["dead-one"]


def test_gpus_table_fits_80_columns():
    text = render_table(make_gpu_source(8).sample(), {})
    assert max(len(line) for line in text.splitlines()) <= 80


def _unreadable(monkeypatch: pytest.MonkeyPatch, bad: Path) -> None:
    """``bad``'s scans fail as a directory without read permission does (chmod does not stop root)."""
    from state.store import StateStore

    scan = StateStore.scan

    def failing(self, *args, **kwargs):
        if Path(self.root) == bad:
            raise PermissionError(13, "Permission denied", str(bad))
        return scan(self, *args, **kwargs)

    monkeypatch.setattr(StateStore, "scan", failing)


@pytest.mark.parametrize("form", ["alone", "beside a readable one"])
def test_snapshot_of_an_unreadable_directory_says_so_and_fails(form, tmp_path, capsys, monkeypatch):
    """Never "no experiments" with exit 0: what a source holds is unknown when its scan failed."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    for directory in (good, bad):
        directory.mkdir()
    study = write_study(tmp_path, MINIMAL_STUDY)
    make_native(good, study, "readable", status="completed")
    make_native(bad, study, "hidden", status="completed")
    _unreadable(monkeypatch, bad.resolve())
    argv = ["snapshot", str(bad)] if form == "alone" else ["snapshot", str(good), "--source", str(bad)]
    code, out, err = run_main(argv, capsys)
    assert code == 1
    assert err.strip() == f"expwatch: cannot read {bad.resolve()}: Permission denied"
    assert out == "" and "no experiments" not in out


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="chmod does not stop root")
def test_snapshot_of_a_directory_without_read_permission_fails(tmp_path, capsys):
    state = tmp_path / "private"
    state.mkdir()
    state.chmod(0o000)
    try:
        code, out, err = run_main(["snapshot", str(state)], capsys)
    finally:
        state.chmod(0o700)
    assert code == 1 and "no experiments" not in out
    assert f"cannot read {state}" in err and "Permission denied" in err


def test_snapshot_width_must_leave_room_for_a_table(capsys):
    with pytest.raises(SystemExit) as usage:
        main(["snapshot", "--width", "0"])
    assert usage.value.code == 2
    assert "takes a width of 40 columns or more, got '0'" in capsys.readouterr().err


def test_one_directory_spelled_several_ways_is_one_source(tmp_path: Path, monkeypatch, capsys):
    from tests.hardening.helpers import write_lem

    state = tmp_path / "s1"
    state.mkdir()
    write_lem(state, "exp", status="completed")
    (tmp_path / "link").symlink_to(state)
    monkeypatch.chdir(tmp_path)
    assert main(["list", "--json", "--source", "s1", "--source", "./s1", "--source", str(state), "--source", "s1/",
                 "--source", "link"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(o["source"], o["experiment_id"]) for o in listed] == [("s1", "exp")]


def test_show_of_a_file_that_is_a_folder_says_so_in_words(tmp_path: Path, capsys):
    (tmp_path / "dir.json").mkdir()
    assert main(["show", "dir", "--source", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "expwatch: unreadable: dir.json: not a regular file (a directory)\n"
