"""The CLI in unfriendly surroundings: no stdin, a dumb terminal, colour switched off."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hardening.helpers import run_cli, write_lem

ESC = "\x1b"


@pytest.fixture
def populated(state_dir: Path) -> Path:
    write_lem(state_dir, "exp-running", status="running")
    write_lem(state_dir, "exp-failed", status="failed")
    (state_dir / "bad.json").write_text("{")
    return state_dir


@pytest.mark.parametrize("stdin", ["< /dev/null", "0<&-"], ids=["devnull", "closed"])
def test_list_without_stdin(populated: Path, stdin: str) -> None:
    done = run_cli("list", "--state-dir", str(populated), shell_suffix=stdin)
    assert done.returncode == 0, done.stderr
    assert "exp-running" in done.stdout and "exp-failed" in done.stdout
    assert "broken: truncated JSON" in done.stdout
    assert done.stderr == ""


def test_show_and_list_json_with_stdin_closed(populated: Path) -> None:
    done = run_cli("show", "exp-failed", "--state-dir", str(populated), shell_suffix="0<&-")
    assert done.returncode == 0, done.stderr
    assert "status       failed" in done.stdout
    done = run_cli("list", "--json", "--state-dir", str(populated), shell_suffix="0<&- 2>&1")
    assert done.returncode == 0 and done.stdout.lstrip().startswith("[")


@pytest.mark.parametrize(
    "env",
    [{"TERM": "dumb"}, {"NO_COLOR": "1"}, {"TERM": "dumb", "NO_COLOR": "1"}],
    ids=["dumb", "no-color", "both"],
)
def test_list_prints_no_escapes(populated: Path, env: dict[str, str]) -> None:
    for form in ([], ["--md"], ["--json"]):
        done = run_cli("list", *form, "--state-dir", str(populated), env=env)
        assert done.returncode == 0, done.stderr
        assert ESC not in done.stdout + done.stderr


def test_snapshot_with_dumb_terminal_no_color_and_no_stdin(populated: Path) -> None:
    """The headless dashboard run behind ``snapshot`` needs neither a terminal nor stdin."""
    done = run_cli("snapshot", str(populated), env={"TERM": "dumb", "NO_COLOR": "1"}, shell_suffix="0<&-")
    assert done.returncode == 0, done.stderr
    assert ESC not in done.stdout + done.stderr
    assert "1 running" in done.stdout and "1 broken" in done.stdout
    assert "exp-running" in done.stdout and "exp-failed" in done.stdout
