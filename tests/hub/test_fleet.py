"""Real processes: agents publishing state directories into a real redis-server, a dashboard-side source reading it."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.hub.fleet import FollowedHub, finished_experiment, running_experiment, start_agent
from tests.hub.redis_server import RedisServer
from tests.runtime.helpers import cli_env, expwatch, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def owner(processes: list[subprocess.Popen]) -> int:
    """A live process to own the running experiments (killed at the end)."""
    process = subprocess.Popen(["sleep", "600"])
    processes.append(process)
    return process.pid


@pytest.fixture
def fleet(tmp_path: Path, owner: int) -> tuple[Path, Path]:
    alpha, beta = tmp_path / "alpha", tmp_path / "beta"
    alpha.mkdir()
    beta.mkdir()
    running_experiment(alpha, "train", owner)
    finished_experiment(alpha, "baseline")
    finished_experiment(beta, "sweep", "failed")
    return alpha, beta


def test_two_hosts_in_one_view(redis_server: RedisServer, fleet, processes, tmp_path: Path):
    alpha, beta = fleet
    processes.append(start_agent(redis_server.url, alpha, "alpha", tmp_path / "alpha.log"))
    processes.append(start_agent(redis_server.url, beta, "beta", tmp_path / "beta.log"))
    with FollowedHub(redis_server.url) as view:
        wait_for(lambda: {"alpha/alpha/train", "alpha/alpha/baseline", "beta/beta/sweep"} <= view.rows().keys(), 30, "both hosts' rows")
        assert wait_for(lambda: view.liveness("alpha/alpha/train") == "alive", 20, "the host's own verdict")
        assert view.rows()["beta/beta/sweep"].entry.host == "beta"
        finished_experiment(beta, "late")
        wait_for(lambda: "beta/beta/late" in view.rows(), 20, "a new file to arrive through the stream")
        (beta / "late.json").unlink()
        wait_for(lambda: "beta/beta/late" not in view.rows(), 20, "a removed file to leave")

    listed = expwatch("list", "--source", redis_server.url, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {(r["host"], r["experiment_id"]): r for r in json.loads(listed.stdout)}
    assert rows[("alpha", "train")]["verdict"]["liveness"] == "alive"
    assert ("beta", "sweep") in rows
    table = expwatch("list", "--source", redis_server.url)
    assert "HOST" in table.stdout and "alpha" in table.stdout and "beta" in table.stdout


def test_a_killed_agent_makes_its_running_experiments_unknown_never_dead(redis_server: RedisServer, fleet, processes, tmp_path: Path):
    alpha, _beta = fleet
    agent = start_agent(redis_server.url, alpha, "alpha", tmp_path / "alpha.log", lease=1.5)
    processes.append(agent)
    with FollowedHub(redis_server.url) as view:
        wait_for(lambda: view.liveness("alpha/alpha/train") == "alive", 30, "the host's verdict")
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        wait_for(lambda: view.liveness("alpha/alpha/train") == "unknown", 20, "the lease to expire")
        reason = view.rows()["alpha/alpha/train"].verdict.reason
        assert "alpha silent for" in reason and "lease expired" in reason
        assert view.rows()["alpha/alpha/baseline"].entry.status == "completed", "finished experiments stay as they were"
        processes.append(start_agent(redis_server.url, alpha, "alpha", tmp_path / "alpha.log", lease=1.5))
        wait_for(lambda: view.liveness("alpha/alpha/train") == "alive", 30, "the restarted agent's verdict")
        assert all(liveness != "dead" for key, liveness, _ in view.verdicts_seen if key == "alpha/alpha/train")


def test_the_hub_restarting_empty_loses_nothing(redis_server: RedisServer, fleet, processes, tmp_path: Path):
    alpha, beta = fleet
    processes.append(start_agent(redis_server.url, alpha, "alpha", tmp_path / "alpha.log"))
    processes.append(start_agent(redis_server.url, beta, "beta", tmp_path / "beta.log"))
    everything = {"alpha/alpha/train", "alpha/alpha/baseline", "beta/beta/sweep"}
    with FollowedHub(redis_server.url) as view:
        wait_for(lambda: everything <= view.rows().keys(), 30, "both hosts' rows")
        redis_server.kill()
        wait_for(lambda: view.source.status is not None, 20, "the source to notice")
        assert everything <= view.rows().keys(), "the last good picture stays while the hub is away"
        finished_experiment(beta, "written-while-away")
        redis_server.start()  # appendonly off: it comes back empty
        everything.add("beta/beta/written-while-away")
        wait_for(lambda: everything == set(view.rows()) and view.source.status is None, 30, "the agents to republish")
        wait_for(lambda: view.liveness("alpha/alpha/train") == "alive", 20, "the verdict to come back")
    assert "republishing" in (tmp_path / "alpha.log").read_text() or "publishing" in (tmp_path / "alpha.log").read_text()


def test_a_hub_back_empty_keeps_the_last_good_picture_until_the_agents_republish(redis_server: RedisServer, fleet, processes, tmp_path: Path):
    alpha, beta = fleet
    agents = [start_agent(redis_server.url, alpha, "alpha", tmp_path / "alpha.log"), start_agent(redis_server.url, beta, "beta", tmp_path / "beta.log")]
    processes.extend(agents)
    everything = {"alpha/alpha/train", "alpha/alpha/baseline", "beta/beta/sweep"}
    with FollowedHub(redis_server.url) as view:
        wait_for(lambda: everything <= view.rows().keys(), 30, "both hosts' rows")
        for agent in agents:
            agent.send_signal(signal.SIGSTOP)  # the agents republish only once the view has rescanned the empty hub
        redis_server.restart()  # appendonly off: back empty
        wait_for(lambda: "last good picture kept" in (view.source.status or ""), 30, "the view to find the hub empty")
        assert "alpha" in view.source.status and "beta" in view.source.status
        assert everything <= view.rows().keys()
        (beta / "sweep.json").unlink()  # gone while the hub was empty: it must go once beta has republished
        for agent in agents:
            agent.send_signal(signal.SIGCONT)
        wait_for(lambda: view.source.status is None, 30, "the agents to republish")
        wait_for(lambda: set(view.rows()) == everything - {"beta/beta/sweep"}, 30, "the removed file's row to go")
        wait_for(lambda: view.liveness("alpha/alpha/train") == "alive", 20, "the verdict to come back")
        assert view.vanished(everything - {"beta/beta/sweep"}) == set(), "no row left the board during the restart"


def test_agent_refuses_bad_arguments(tmp_path: Path):
    env = cli_env()
    env.pop("EXPWATCH_HUB", None)
    missing = expwatch("agent", str(tmp_path), env=env)
    assert missing.returncode != 0 and "no hub" in missing.stderr
    bad = expwatch("agent", str(tmp_path), "--hub", "http://nope")
    assert bad.returncode != 0 and "not a hub URL" in bad.stderr
    odd = expwatch("agent", str(tmp_path), "--hub", "redis://127.0.0.1:1/0", "--host-name", "a/b")
    assert odd.returncode != 0 and "bad --host-name" in odd.stderr


def test_list_says_when_the_hub_is_down():
    down = expwatch("list", "--source", "redis://127.0.0.1:1/0")
    assert down.returncode != 0 and "connection refused" in down.stderr and len(down.stderr.strip().splitlines()) == 1
