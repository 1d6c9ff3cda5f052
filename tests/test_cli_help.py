"""Every subcommand answers --help (argparse help strings are format strings: a stray % breaks them)."""

from __future__ import annotations

import pytest

from app.cli import _command_modules, command_names, main


@pytest.mark.parametrize("name", sorted(m.NAME for m in _command_modules()))
def test_help(name: str, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: expwatch" in capsys.readouterr().out


def test_command_names_match_their_modules():
    """A command is found by its module's name before the module is imported: the two must agree."""
    assert {m.NAME: m.__name__ for m in _command_modules()} == command_names()


def test_unknown_directory_is_one_line_error(tmp_path, capsys):
    code = main([str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert code == 3
    assert err.count("\n") == 1 and "no state directory" in err
