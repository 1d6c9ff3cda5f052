"""The experiment commands: list, show, mark-stale, resume --dry-run; output forms and exit codes."""

from __future__ import annotations

import sys

import json
from pathlib import Path

import pytest

from app.cli import main
from app.commands import _common
from app.commands._common import dump_json
from runtime.exit_codes import EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_USAGE
from runtime.liveness import identity_of
from state.transitions import ExperimentStatus

from tests.runtime.helpers import expwatch, journal, make_lem, make_native, read_doc, write_study


@pytest.fixture
def populated(tmp_path: Path, state_dir: Path) -> Path:
    study = write_study(tmp_path)
    make_native(state_dir, study, "native-dead", status="running", completed=range(5), failed=[5])
    make_native(state_dir, study, "native-live", status="running", owner=identity_of())
    make_native(state_dir, study, "native-done", status="completed", completed=range(20))
    make_lem(state_dir, "lem-int")
    (state_dir / "broken.json").write_text('{"experiment_id": "x", "status": ')
    (state_dir / "campaign_manifest.json").write_text("{}")
    return state_dir


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json_has_one_object_per_experiment(populated: Path, capsys):
    code, out, _ = cli(capsys, "list", "--json", "--state-dir", populated)
    assert code == 0
    rows = {row["experiment_id"]: row for row in json.loads(out)}
    assert set(rows) == {"native-dead", "native-live", "native-done", "lem-int", "broken"}
    assert rows["native-dead"]["status"] == "running" and rows["native-dead"]["format"] == "expwatch-1"
    assert rows["native-dead"]["verdict"]["liveness"] == "dead"
    assert rows["native-live"]["verdict"]["liveness"] == "alive"
    assert rows["native-done"]["verdict"] is None
    assert (rows["native-dead"]["runs_done"], rows["native-dead"]["runs_failed"], rows["native-dead"]["runs_total"]) == (5, 1, 20)
    assert rows["lem-int"]["format"] == "llenergymeasure-v1" and rows["lem-int"]["status"] == "interrupted"
    broken = rows["broken"]
    assert broken["status"] == "broken" and broken["path"].endswith("broken.json")
    assert broken["error"].startswith("truncated JSON")


@pytest.mark.parametrize("value", [
    [{"id": "caf\u00e9 \u009b[31m \U0001f600", "runs": [], "verdict": {}, "energy": 1e-05, "pid": None, "ok": True}],
    [{"path": "/state/\udcff.json"}],  # an undecodable file name, as os.fsdecode gives it
    [],
])
def test_json_output_is_the_same_json_in_ascii(value: object):
    text = dump_json(value)
    assert text.isascii()  # a control character from a file never reaches the terminal raw
    assert json.loads(text) == value
    assert text.splitlines() == [line.replace("1e-05", "0.00001") for line in json.dumps(value, indent=2).splitlines()]


def test_json_output_escapes_what_a_terminal_would_act_on():
    """JSON leaves DEL raw; the listing writes it as an escape, like every other unprintable character."""
    value = [{"id": "del\x7f bell\x07 csi\x9b"}]
    text = dump_json(value)
    assert "\x7f" not in text and text.replace("\n", "").isprintable()
    assert json.loads(text) == value


@pytest.mark.parametrize("count", [0, 1, 3, 4, 6, 7, 10])
def test_a_long_list_is_printed_in_chunks_as_the_same_bytes(count: int, capsys, monkeypatch):
    """``print_json`` writes a long list a few items per call; the text is what one call gives, whatever
    each chunk needs (an escape in one, the ``json`` fallback for a lone surrogate in another)."""
    monkeypatch.setattr(_common, "JSON_CHUNK", 3)
    odd = [{"id": "caf\u00e9 \x7f"}, {"path": "/state/\udcff.json"}, [], {}, None, {"nested": [1, {"a": []}]}]
    value = [odd[i % len(odd)] | {"i": i} if isinstance(odd[i % len(odd)], dict) else odd[i % len(odd)] for i in range(count)]
    _common.print_json(value)
    assert capsys.readouterr().out == dump_json(value) + "\n"


@pytest.mark.parametrize("count", [0, 1, 3, 4, 6, 7, 10])
@pytest.mark.parametrize("written", ["none", "all", "even", "odd"])
@pytest.mark.parametrize("buffered", [True, False])
def test_a_list_with_items_given_written_prints_the_same_bytes(count: int, written: str, buffered: bool, capsys, monkeypatch):
    """``print_json``: any mix of objects and items given as ``item_bytes`` wrote them, across
    chunk ends, to a stream with or without a byte buffer: what ``print_json`` prints for the objects."""
    import io

    monkeypatch.setattr(_common, "JSON_CHUNK", 3)
    value = [{"i": i, "id": "caf\u00e9" if i % 3 else "/state/\udcff.json", "runs": [i, {"a": None}]} for i in range(count)]
    pick = {"none": lambda i: False, "all": lambda i: True, "even": lambda i: i % 2 == 0, "odd": lambda i: i % 2 == 1}[written]
    items = [_common.item_bytes(v) if pick(i) else v for i, v in enumerate(value)]
    if not buffered:
        monkeypatch.setattr("sys.stdout", io.StringIO())
    _common.print_json(items)
    out = capsys.readouterr().out if buffered else sys.stdout.getvalue()
    assert out == dump_json(value) + "\n"


def test_list_status_filter_and_table_forms(populated: Path, capsys):
    code, out, _ = cli(capsys, "list", "--json", "--status", "running,broken", "--state-dir", populated)
    assert code == 0 and {r["experiment_id"] for r in json.loads(out)} == {"native-dead", "native-live", "broken"}
    code, out, _ = cli(capsys, "list", "--status", "completed", "--status", "interrupted", "--state-dir", populated)
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "RUNS", "PROCS", "AGE", "FORMAT"]
    assert sorted(line.split()[0] for line in lines[1:]) == ["lem-int", "native-done"]
    code, out, _ = cli(capsys, "list", "--state-dir", populated)
    dead = next(line for line in out.splitlines() if line.startswith("native-dead"))
    assert "STALE" in dead and "5/20 (1 failed)" in dead
    live = next(line for line in out.splitlines() if line.startswith("native-live"))
    assert "running (alive)" in live
    assert "broken: truncated JSON" in out and "campaign_manifest" not in out
    code, out, _ = cli(capsys, "list", "--md", "--state-dir", populated)
    md = out.splitlines()
    assert md[0] == "| ID | STATUS | RUNS | PROCS | AGE | FORMAT |" and md[1] == "|---|---|---|---|---|---|"
    assert len(md) == 2 + 5
    assert cli(capsys, "list", "--status", "weird", "--state-dir", populated)[0] == EXIT_USAGE


def test_list_on_a_missing_directory_is_not_found(tmp_path: Path, capsys):
    code, _, err = cli(capsys, "list", "--state-dir", tmp_path / "nowhere")
    assert code == EXIT_NOT_FOUND and "no state directory" in err


def test_show_json_and_text(populated: Path, capsys):
    code, out, _ = cli(capsys, "show", "native-dead", "--json", "--state-dir", populated)
    assert code == 0
    data = json.loads(out)
    assert data["experiment_id"] == "native-dead" and data["format"] == "expwatch-1"
    assert data["verdict"]["liveness"] == "dead" and data["state"]["schema"] == "expwatch.experiment/1"
    assert len(data["state"]["runs"]) == 20
    code, out, _ = cli(capsys, "show", "native-dead", "--state-dir", populated)
    assert "owner        dead" in out and "failed runs (1):" in out and "earlier failure" in out
    assert "history:" in out
    code, out, _ = cli(capsys, "show", "lem-int", "--state-dir", populated)
    assert code == 0 and "llenergymeasure-v1" in out


def test_errors_are_one_line_with_exit_codes(populated: Path):
    missing = expwatch("show", "nope", "--state-dir", populated)
    assert missing.returncode == EXIT_NOT_FOUND
    assert missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr
    broken = expwatch("show", "broken", "--state-dir", populated)
    assert broken.returncode == 1 and "truncated JSON" in broken.stderr and broken.stderr.count("\n") == 1
    refused = expwatch("mark-stale", "native-live", "--state-dir", populated)
    assert refused.returncode == EXIT_REFUSED and "owner is alive" in refused.stderr


def test_mark_stale_command(populated: Path, capsys):
    before = (populated / "native-dead.json").read_bytes()
    code, out, _ = cli(capsys, "mark-stale", "native-dead", "--dry-run", "--state-dir", populated)
    assert code == 0 and out.startswith("would mark native-dead interrupted")
    assert (populated / "native-dead.json").read_bytes() == before
    code, out, _ = cli(capsys, "mark-stale", "--all", "--dry-run", "--state-dir", populated)
    assert code == 0 and out.splitlines() == [line for line in out.splitlines() if "native-dead" in line] and out
    code, out, _ = cli(capsys, "mark-stale", "native-dead", "--state-dir", populated)
    assert code == 0 and "running -> interrupted" in out
    assert read_doc(populated, "native-dead").status is ExperimentStatus.INTERRUPTED
    code, _, err = cli(capsys, "mark-stale", "native-dead", "--state-dir", populated)
    assert code == EXIT_REFUSED and "not running" in err
    code, out, _ = cli(capsys, "mark-stale", "--all", "--state-dir", populated)
    assert code == 0 and "no running experiment has a dead owner" in out
    assert cli(capsys, "mark-stale", "--state-dir", populated)[0] == EXIT_USAGE
    assert [e["action"] for e in journal(populated)] == ["mark-stale"]


def test_mark_stale_all_that_left_one_as_it_was_exits_non_zero_and_force_needs_an_id(populated: Path, capsys):
    sidecar = populated / ".expwatch"
    sidecar.mkdir(exist_ok=True)
    (sidecar / "journal.jsonl").symlink_to(populated / "elsewhere.jsonl")  # refused: never written through a link
    before = (populated / "native-dead.json").read_bytes()
    code, out, _ = cli(capsys, "mark-stale", "--all", "--state-dir", populated)
    assert code == EXIT_REFUSED
    assert out.startswith("native-dead: left as it was (") and "journal.jsonl: it is a symlink" in out
    assert (populated / "native-dead.json").read_bytes() == before
    code, _, err = cli(capsys, "mark-stale", "--all", "--force", "--state-dir", populated)
    assert code == EXIT_USAGE and "--force marks one experiment at a time" in err
    assert (populated / "native-dead.json").read_bytes() == before


def test_resume_dry_run_output_and_refusals(populated: Path, capsys):
    code, out, _ = cli(capsys, "resume", "native-dead", "--dry-run", "--state-dir", populated)
    assert code == 0
    assert out.splitlines()[0] == "Resume native-dead (expwatch-1), now running"
    assert "First marked interrupted" in out and "14 to run, 5 completed (skipped)" in out
    assert "Failed runs kept as failed: 1" in out
    code, out, _ = cli(capsys, "resume", "native-live", "--dry-run", "--state-dir", populated)
    assert code == EXIT_REFUSED and "Refused: already running" in out
    code, _, err = cli(capsys, "resume", "native-done", "--state-dir", populated)
    assert code == EXIT_REFUSED and "already completed" in err
    assert journal(populated) == []


def test_run_with_an_existing_id_is_a_conflict(tmp_path: Path, state_dir: Path, capsys):
    study = write_study(tmp_path)
    make_native(state_dir, study, "taken", status="completed", completed=range(20))
    code, _, err = cli(capsys, "run", study, "--id", "taken", "--state-dir", state_dir)
    assert code == EXIT_CONFLICT and "already exists" in err
    with pytest.raises(SystemExit) as usage:  # refused as a usage error, before anything runs
        cli(capsys, "run", study, "--id", "../escape", "--state-dir", state_dir)
    assert usage.value.code == EXIT_USAGE and "argument --id" in capsys.readouterr().err


def test_a_grid_too_large_for_one_state_file_is_refused(tmp_path: Path, state_dir: Path, capsys):
    study = write_study(tmp_path, "def s(run):\n    pass\n\nsteps = [s]\ngrid = {'a': range(400), 'b': range(400)}\n")
    code, _, err = cli(capsys, "run", study, "--state-dir", state_dir)
    assert code == 1 and "the grid is too large (160,000 runs); one state file holds at most 150,000 runs" in err
    assert list(state_dir.glob("*.json")) == []


def test_json_timestamps_are_as_precise_as_the_file(tmp_path: Path):
    """llenergymeasure's naive microsecond times came out cut to seconds and with a +00:00 they do not have."""
    import json as _json

    from state.lem import LemExperimentState

    state_dir = tmp_path / ".state"
    state_dir.mkdir()
    text = LemExperimentState(
        experiment_id="precise", status="completed", started_at="2025-03-14T09:26:53.589793",
        last_updated="2025-03-14T10:00:00.000123",
    ).to_json()
    (state_dir / "precise.json").write_text(text)
    done = expwatch("list", "--json", "--state-dir", state_dir, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (row,) = _json.loads(done.stdout)
    assert row["started_at"] == "2025-03-14T09:26:53.589793"
    assert row["last_updated"] == "2025-03-14T10:00:00.000123"
    assert "naive" in row["times"]
    shown = _json.loads(expwatch("show", "precise", "--json", "--state-dir", state_dir, cwd=tmp_path).stdout)
    assert shown["started_at"] == shown["state"]["started_at"] == "2025-03-14T09:26:53.589793"


def test_resume_of_a_copied_state_directory_runs_where_the_user_pointed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The file records the old --state-dir and cwd: resuming the copy must not write to the original."""
    import shutil

    original = tmp_path / "lab" / ".state"
    original.mkdir(parents=True)
    study = write_study(tmp_path / "lab")
    monkeypatch.chdir(tmp_path / "lab")  # the runner records the directory it was started in
    make_native(original, study, "moved", status="interrupted", completed=range(3))
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "lab", elsewhere)
    shutil.rmtree(original / ".expwatch" / "logs", ignore_errors=True)
    done = expwatch("resume", "moved", "--dry-run", "--state-dir", elsewhere / ".state", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    command = next(line for line in out.splitlines() if line.startswith("Command:"))
    assert f"--state-dir {(elsewhere / '.state').resolve()}" in command and str(original) not in command
    assert f"In: {elsewhere.resolve()}" in out
    assert "Note: recorded for" in out and str(original) in out
    log = next(line for line in out.splitlines() if line.startswith("Log:"))
    assert str(elsewhere.resolve()) in log


def test_a_listing_run_as_a_process_ends_at_once_with_all_its_output(populated: Path, capsys):
    """Run as a process, `list` exits without the interpreter's teardown: every byte is still written,
    the exit code kept, and a reader that stops early (a pipe into head) costs no traceback."""
    import subprocess

    from tests.runtime.helpers import cli_argv, cli_env

    for _ in range(150):  # enough rows that the output outgrows a pipe's buffer
        make_lem(populated, f"lem-{_:03d}")
    code, out, _ = cli(capsys, "list", "--json", "--state-dir", populated)
    buffered = {k: v for k, v in cli_env().items() if k != "PYTHONUNBUFFERED"}  # as a user's shell runs it
    done = expwatch("list", "--json", "--state-dir", populated, env=buffered)
    assert (done.returncode, done.stderr) == (0, "") and done.stdout.endswith("}\n]\n") and len(done.stdout) > 65536
    shown = lambda rows: [(r["experiment_id"], r["status"], r["path"]) for r in rows]  # noqa: E731 - verdict ages move
    assert shown(json.loads(done.stdout)) == shown(json.loads(out))
    table = expwatch("list", "--state-dir", populated, env=buffered)
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 1 + len(json.loads(out))  # a text stream's buffer too
    empty = populated.parent / "empty"
    empty.mkdir()
    with open("/dev/full", "w") as full:  # one line, still buffered at the end: its failed flush is an error, not a success
        lost = subprocess.run(cli_argv("list", "--state-dir", empty), env=buffered, stdout=full, stderr=subprocess.PIPE, text=True)
    assert lost.returncode != 0 and "cannot write the output: No space left on device" in lost.stderr
    refused = expwatch("list", "--status", "weird", "--state-dir", populated)
    assert refused.returncode == EXIT_USAGE and "unknown status weird" in refused.stderr
    reader = subprocess.Popen(cli_argv("list", "--json", "--state-dir", populated), env=buffered,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reader.stdout is not None and reader.stdout.read(100)
    reader.stdout.close()  # as head does
    _, err = reader.communicate(timeout=60)
    assert b"Traceback" not in err and reader.returncode in (0, 1)


HUB = "redis://127.0.0.1:1/0"  # nothing listens there: a refusal must not need the hub


@pytest.mark.parametrize("command", ["mark-stale", "resume", "stop"])
def test_an_action_on_a_hub_url_is_refused_naming_the_url_as_typed_and_the_host(command: str, tmp_path: Path, capsys):
    code, _, err = cli(capsys, command, "x", "--source", HUB)
    assert code == EXIT_USAGE
    assert err.startswith(f"expwatch: {command} works on a state directory; {HUB} is a Redis hub: ")
    assert "experiment's host" in err and "agent" in err and f"`expwatch {command} --source DIR`" in err
    assert err.count("\n") == 1


def test_a_hub_url_with_a_password_is_refused_without_printing_it(capsys):
    code, _, err = cli(capsys, "mark-stale", "--all", "--source", "redis://:s3cret@127.0.0.1:1/0")
    assert code == EXIT_USAGE and "redis://:***@127.0.0.1:1/0 is a Redis hub" in err and "s3cret" not in err


def test_run_refuses_a_hub_url_and_creates_no_directory(tmp_path: Path):
    study = write_study(tmp_path)
    url = "redis://127.0.0.1:16399/0"
    done = expwatch("run", study, "--source", url, cwd=tmp_path)
    assert done.returncode == EXIT_USAGE
    assert done.stderr == (f"expwatch: run writes to a state directory; {url} is a Redis hub "
                           "(use --hub URL to share run state through it)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.py"]


def test_run_on_a_file_that_is_no_source_says_so(tmp_path: Path, capsys):
    study = write_study(tmp_path)
    (tmp_path / "notes.txt").write_text("not a state directory")
    code, _, err = cli(capsys, "run", study, "--source", tmp_path / "notes.txt")
    assert code == EXIT_NOT_FOUND and "notes.txt is not a directory" in err and "FileExistsError" not in err


def test_a_missing_state_directory_given_as_a_url_is_named_as_typed(capsys):
    code, _, err = cli(capsys, "mark-stale", "x", "--source", "http://example.invalid/state")
    assert code == EXIT_NOT_FOUND and "no state directory at http://example.invalid/state " in err


def test_run_refuses_an_id_no_file_can_be_named_after_as_a_usage_error(tmp_path: Path, state_dir: Path):
    study = write_study(tmp_path)
    for ident, why in (("../evil", "contains a '..' or '.' path component"), (".hidden", "would name a hidden file"),
                       ("", "empty experiment id")):
        done = expwatch("run", study, "--state-dir", state_dir, "--id", ident, cwd=tmp_path)
        assert done.returncode == EXIT_USAGE and "argument --id: " in done.stderr and why in done.stderr, done.stderr
    assert not any(state_dir.glob("*.json"))
