"""A hub row opened in the inspector: the file its host published, and run.shared from the hub's hash."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from app.app import DashboardOptions, ExpwatchApp
from app.screens.inspector import InspectorScreen
from app.screens.inspector.overview import overview_sections
from runtime.liveness import LocalProbe
from tests.dashboard.helpers import wait_for
from tests.hub.fleet import finished_experiment, start_agent
from tests.hub.redis_server import RedisServer
from tests.runtime.helpers import expwatch, write_study

pytestmark = pytest.mark.slow

STUDY = '''\
def store(run):
    run.shared["sample_id"] = "s123"
    run.shared.incr("done")

steps = [store]
grid = {"i": range(3)}
'''


async def test_the_inspector_shows_a_hub_rows_shared_state(redis_server: RedisServer, processes: list[subprocess.Popen], tmp_path: Path):
    remote = tmp_path / "remote"
    remote.mkdir()
    study = write_study(tmp_path, STUDY)
    done = expwatch("run", study, "--state-dir", remote, "--id", "train", "--hub", redis_server.url,
                    "--host-name", "gpu7", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    redis_server.client().hset("expwatch:kv:gpu7:train", mapping={"bad\x1b": "{oops", "line": '"a\\nb"'})
    processes.append(start_agent(redis_server.url, remote, "gpu7", tmp_path / "agent.log"))
    app = ExpwatchApp(DashboardOptions(sources=(redis_server.url,), gpus=False),
                      clock=lambda: datetime.now(timezone.utc), probe=LocalProbe())
    async with app.run_test(size=(160, 40)) as pilot:
        key = "gpu7/remote/train"
        await wait_for(pilot, lambda: app.board.get(key) is not None, 30, "the hub row")
        app.inspect(key)
        await wait_for(pilot, lambda: isinstance(app.screen, InspectorScreen) and app.screen.extras is not None, 30, "the extras")
        screen = app.screen
        assert isinstance(screen, InspectorScreen)
        assert screen.snapshot is not None and screen.snapshot.reason is None and screen.snapshot.doc.experiment_id == "train"
        extras = screen.extras
        assert extras.shared == (("done", 3), ("line", "a\nb"), ("sample_id", "s123"))
        assert extras.shared_error == "'bad\\x1b' is not valid JSON (Expecting property name enclosed in double quotes at character 1)"
        sections = overview_sections(screen.snapshot, extras, now=datetime.now().astimezone(), base=tmp_path, has_verdict=False)
        shared = next(s for s in sections if s.title == "Shared run state (run.shared)")
        assert shared.rows == (("done", "3"), ("line", "a b"), ("sample_id", "s123"))
        assert not app.worker_failures


def _published(url: str, key: str) -> bool:
    listed = expwatch("list", "--json", "--source", url)
    return listed.returncode == 0 and any(o.get("key") == key for o in json.loads(listed.stdout or "[]"))


def test_show_on_a_hub_finds_a_row_by_id_or_key_and_names_the_keys_of_an_id_two_hosts_share(
    redis_server: RedisServer, processes: list[subprocess.Popen], tmp_path: Path
):
    for host in ("gpu7", "gpu8"):
        remote = tmp_path / host / "remote"
        remote.mkdir(parents=True)
        finished_experiment(remote, "train")
        if host == "gpu7":
            finished_experiment(remote, "eval")
        processes.append(start_agent(redis_server.url, remote, host, tmp_path / f"{host}.log"))
    deadline = time.monotonic() + 30
    while not all(_published(redis_server.url, k) for k in ("gpu7/remote/eval", "gpu8/remote/train")):
        assert time.monotonic() < deadline, "the agents never published"
        time.sleep(0.3)
    shown = expwatch("show", "eval", "--json", "--source", redis_server.url)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["state"]["experiment_id"] == "eval"
    by_key = expwatch("show", "gpu8/remote/train", "--source", redis_server.url)
    assert by_key.returncode == 0, by_key.stderr
    assert by_key.stdout.startswith("experiment   train") and "status       completed" in by_key.stdout
    both = expwatch("show", "train", "--source", redis_server.url)
    assert both.returncode == 3
    assert both.stderr == "expwatch: several experiments are called 'train': gpu7/remote/train, gpu8/remote/train; give one of these keys\n"
    missing = expwatch("show", "nope", "--source", redis_server.url)
    assert (missing.returncode, missing.stderr) == (3, f"expwatch: no experiment 'nope' in {redis_server.url}\n")
