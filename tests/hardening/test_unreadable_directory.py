"""A state directory this user may not read: every command says so in one line, never a traceback or an empty list."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hardening.helpers import in_child_as

NOBODY = 65534


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A 0700 state directory of root's, in a folder anybody may walk through."""
    outer = Path(tempfile.mkdtemp(prefix="expwatch-priv-"))
    try:
        outer.chmod(0o755)
        state = outer / ".state"
        state.mkdir(mode=0o700)
        (state / "a.json").write_text("{}")
        yield state
    finally:
        shutil.rmtree(outer, ignore_errors=True)


def _as_nobody(argv: list[str]) -> tuple[int, str, str]:
    def body() -> tuple[int, str, str]:
        from app.cli import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        return code, out.getvalue(), err.getvalue()

    try:
        code, out, err = in_child_as(NOBODY, body)
    except PermissionError as exc:
        pytest.skip(f"cannot run as another user here: {exc}")
    return code, out, err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
@pytest.mark.parametrize("json_out", [False, True])
def test_list_on_a_directory_it_may_not_read_says_so(private_dir: Path, json_out: bool):
    code, out, err = _as_nobody(["list", *(["--json"] if json_out else []), "--source", str(private_dir)])
    assert (code, out) == (1, "")
    assert err == f"expwatch: cannot read {private_dir}: Permission denied\n"
