"""``expwatch snapshot`` over a hub beside a state directory."""

from __future__ import annotations

from pathlib import Path

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

