"""``expwatch snapshot`` over a hub beside a state directory, and over a hub that does not answer."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from app.cli import main
from tests.hardening.helpers import write_lem
from tests.hub.redis_server import RedisServer
from tests.hub.test_hub_first_scan import _publish_directory


def test_snapshot_shows_a_hubs_rows_beside_a_directorys(redis_server: RedisServer, tmp_path: Path, capsys):
    (tmp_path / "published").mkdir()
    published = _publish_directory(redis_server.url, tmp_path / "published")
    local = tmp_path / "local"
    local.mkdir()
    write_lem(local, "exp-here", status="running")
    assert main(["snapshot", str(local), "--source", redis_server.url]) == 0
    table = capsys.readouterr().out.split("\n\n")[0].splitlines()
    assert table[0].startswith(f"{local}  {redis_server.url}: ")
    rows = table[2:]
    assert any(r.split()[:2] == ["local", "exp-here"] for r in rows)
    assert sum(r.split()[0] != "local" for r in rows) == len(published), "every published row, under the hub's source"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_snapshot_of_a_hub_that_does_not_answer_fails(tmp_path: Path, capsys):
    url = f"redis://127.0.0.1:{_closed_port()}"
    local = tmp_path / "local"
    local.mkdir()
    assert main(["snapshot", str(local), "--source", url]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"expwatch: cannot read {url}: ") and "connection refused" in captured.err
    assert "no experiments" not in captured.out
