"""The hub's schema against a real redis-server: compare-and-set, the change stream, leases, bad input."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from state.hub.codec import decode_entry, decode_verdict, encode_entry, encode_verdict, host_name_from, valid_host_name
from state.hub.connection import HubAddress, HubError, redact
from state.hub.schema import Hub, LeaseHeld, record_version
from state.record import BrokenRecord, ExperimentRecord
from state.sources import DirectorySource
from state.verdict import Liveness, StaleVerdict
from tests.dashboard.conftest import DEAD_PID, native_doc, populate, write_raw
from tests.hub.redis_server import REDIS_SERVER, RedisServer
from tests.runtime.helpers import wait_for


def _publish(hub: Hub, version: int, summary: str = "{}", verdict: str = "") -> bool:
    return hub.publish("gpu1", "lab", "exp", version=record_version(version), summary=summary, verdict=verdict, doc=b"{}")


def test_url_prefix_and_redaction():
    address = HubAddress.parse("redis://:s3cret@hub.example:6380/2?prefix=lab1")
    assert address.prefix == "lab1" and "prefix" not in address.url
    assert "s3cret" not in address.shown and "***" in address.shown
    assert HubAddress.parse("rediss://hub.example/0").prefix == "expwatch"
    for bad in ("http://hub", "redis://", "redis://hub/0?prefix=../x", "redis://hub:port/0"):
        with pytest.raises(HubError) as caught:
            HubAddress.parse(bad)
        assert "\n" not in str(caught.value)
    assert redact("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"
    unix = HubAddress.parse("unix:///run/expwatch/redis.sock?db=0&prefix=lab1")
    assert unix.url == "unix:///run/expwatch/redis.sock?db=0" and unix.prefix == "lab1", "redis-py needs the '//' kept"
    assert unix.client().connection_pool.connection_kwargs["path"] == "/run/expwatch/redis.sock"


def test_compare_and_set_on_version(redis_server: RedisServer):
    hub = Hub(redis_server.url)
    assert _publish(hub, 200, '{"v": 2}')
    assert not _publish(hub, 100, '{"v": 1}'), "an older version must never overwrite a newer one"
    assert not _publish(hub, 200, '{"v": 2}'), "an unchanged record is not rewritten"
    assert _publish(hub, 200, '{"v": 2}', verdict="x"), "same version, new verdict"
    assert _publish(hub, 300, '{"v": 3}')
    raw = redis_server.client().hgetall(hub.record_key("gpu1", "lab", "exp"))
    assert raw[b"summary"] == b'{"v": 3}' and raw[b"host"] == b"gpu1"
    events = hub.read_events("0-0", block_ms=10)
    assert [e.op for e in events] == ["put", "put", "put"]
    assert hub.set_verdict("gpu1", "lab", "exp", version=record_version(300), verdict="y")
    assert not hub.set_verdict("gpu1", "lab", "exp", version=record_version(200), verdict="z"), "verdict of an old version"
    assert hub.remove(hub.record_key("gpu1", "lab", "exp")) and not hub.remove(hub.record_key("gpu1", "lab", "exp"))
    assert [e.op for e in hub.read_events(events[-1].id, block_ms=10)] == ["put", "del"]


def test_versions_compare_past_float_precision(redis_server: RedisServer):
    hub = Hub(redis_server.url)
    base = 1_796_142_459_828_354_793  # an mtime in ns: beyond a double's exact integers
    assert _publish(hub, base + 1)
    assert not _publish(hub, base, '{"older": 1}')


def test_leases_expire_on_the_servers_clock(redis_server: RedisServer):
    hub = Hub(redis_server.url)
    assert not hub.renew_lease("gpu1", "{}", 0.3), "no lease before the first renewal"
    assert hub.renew_lease("gpu1", "{}", 0.3)
    assert [(l.host, l.alive) for l in hub.leases()] == [("gpu1", True)]
    lease = wait_for(lambda: next((l for l in hub.leases() if not l.alive), None), 10, "the lease to expire")
    assert lease.host == "gpu1" and lease.silent_s >= 0.3


def test_keys_stay_under_the_prefix(redis_server: RedisServer):
    lab1, lab2 = Hub(redis_server.url + "?prefix=lab1"), Hub(redis_server.url + "?prefix=lab2")
    lab1.publish("h", "s", "k", version=record_version(1), summary="{}", verdict="", doc=b"")
    lab1.renew_lease("h", "{}", 10)
    assert lab2.record_keys() == set() and lab2.leases() == []
    assert all(k.startswith(b"lab1:") for k in redis_server.client().keys("*"))


def test_auth_failure_and_refused_connection_are_one_line(tmp_path: Path):
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; CI installs it)")
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory, password="s3cret").start()
    try:
        wrong = Hub(server.url.replace("s3cret", "wrong"))
        with pytest.raises(HubError, match="authentication failed") as caught:
            wrong.ping()
        assert "wrong" not in str(caught.value) and "\n" not in str(caught.value)
        Hub(server.url).ping()
    finally:
        server.stop()
    with pytest.raises(HubError, match="connection refused|cannot connect"):
        Hub(server.url).ping()


def test_full_redis_is_a_clear_error(redis_server: RedisServer):
    redis_server.client().config_set("maxmemory", "1")
    hub = Hub(redis_server.url)
    with pytest.raises(HubError, match="maxmemory"):
        _publish(hub, 1, "x" * 10_000)


def test_records_round_trip(tmp_path: Path):
    populate(tmp_path)
    source = DirectorySource(tmp_path, read_only=True)
    list(source.initial_batches())
    for entry in source.entries().values():
        back = decode_entry(encode_entry(entry), key=f"gpu1/lab/{entry.key}", host="gpu1")
        assert type(back) is type(entry) and back.host == "gpu1" and back.key == f"gpu1/lab/{entry.key}"
        if isinstance(entry, ExperimentRecord):
            assert back.status == entry.status and back.owner == entry.owner and back.runs_done == entry.runs_done
            assert back.log_path is None, "a remote path is never opened here"
    verdict = StaleVerdict(Liveness.DEAD, "pid 1: no such process", ("a",))
    assert decode_verdict(encode_verdict(verdict)) == verdict


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[]", b'{"kind": "record", "entry": {"status": 5}}', b'{"kind": "evil", "entry": {}}', b"[" * 100_000, b"x" * (5 * 1024 * 1024)],
)
def test_hostile_summaries_become_broken_rows(raw: bytes):
    entry = decode_entry(raw, key="gpu1/lab/x", host="gpu1")
    assert isinstance(entry, BrokenRecord) and entry.key == "gpu1/lab/x" and "\n" not in entry.reason


def test_hostile_verdicts_are_ignored():
    for raw in (b"{}", b'{"liveness": "undead", "reason": "x"}', b'{"liveness": "alive", "reason": 3}', b"[" * 100_000):
        assert decode_verdict(raw) is None


def test_host_names():
    assert valid_host_name("gpu-01.lab") and not valid_host_name("../x") and not valid_host_name("a:b")
    assert host_name_from("gpu 01:lab") == "gpu_01_lab" and valid_host_name(host_name_from("..."))


def test_document_survives_a_publish(redis_server: RedisServer, tmp_path: Path):
    write_raw(tmp_path, native_doc("exp", "running", pid=DEAD_PID))
    hub = Hub(redis_server.url)
    hub.publish("gpu1", "lab", "exp", version=record_version(1), summary="{}", verdict="", doc=(tmp_path / "exp.json").read_bytes())
    doc = redis_server.client().hget(hub.record_key("gpu1", "lab", "exp"), "doc")
    assert json.loads(doc)["experiment_id"] == "exp"


def test_a_lease_is_taken_over_only_from_the_value_judged(redis_server: RedisServer):
    hub = Hub(redis_server.url)
    dead = b'{"instance":"dead","pid":4343}'
    redis_server.client().set(hub.lease_key("gpu1"), dead, px=60_000)
    with pytest.raises(LeaseHeld) as caught:
        hub.take_over_lease("gpu1", b'{"instance":"dead","pid":4344}', '{"instance":"new"}', 60)
    assert caught.value.holder == dead and 0 < caught.value.ttl_ms <= 60_000
    assert redis_server.client().get(hub.lease_key("gpu1")) == dead, "a value other than the judged one is left as it is"
    hub.take_over_lease("gpu1", dead, '{"instance":"new"}', 60)
    assert redis_server.client().get(hub.lease_key("gpu1")) == b'{"instance":"new"}'
    assert hub.renew_lease("gpu1", '{"instance":"new"}', 60), "the new holder renews it as its own"
    assert [l.host for l in hub.leases() if l.alive] == ["gpu1"]


def test_two_racing_takeovers_have_one_winner(redis_server: RedisServer):
    dead = b'{"instance":"dead"}'
    contenders = [Hub(redis_server.url), Hub(redis_server.url)]
    for round_ in range(20):
        redis_server.client().set(contenders[0].lease_key("gpu1"), dead, px=60_000)
        start = threading.Barrier(2)
        outcomes: dict[int, str] = {}

        def contend(i: int) -> None:
            start.wait()
            try:
                contenders[i].take_over_lease("gpu1", dead, json.dumps({"instance": f"agent{i}"}), 60)
                outcomes[i] = "won"
            except LeaseHeld as exc:
                outcomes[i] = json.loads(exc.holder)["instance"]

        threads = [threading.Thread(target=contend, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        winners = [i for i, outcome in outcomes.items() if outcome == "won"]
        assert len(outcomes) == 2 and len(winners) == 1, (round_, outcomes)
        assert outcomes[1 - winners[0]] == f"agent{winners[0]}", "the loser meets the winner's live lease"
        assert json.loads(redis_server.client().get(contenders[0].lease_key("gpu1")))["instance"] == f"agent{winners[0]}"


def test_the_refusal_says_why_and_when_the_lease_lapses():
    held = LeaseHeld("gpu1", b'{"pid": 12, "hostname": "box"}', 41_500, why="the lease records no boot id", alive=False)
    assert str(held) == "host gpu1's lease is held by pid 12 on box, not taken over: the lease records no boot id; it lapses in 41.5 s unless its holder renews it"
    assert str(LeaseHeld("gpu1", b"{}", 0)) == "host gpu1 already has a live agent (pid ? on ?)"
