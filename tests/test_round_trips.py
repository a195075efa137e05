"""The round-trip promise, measured on real servers.

Two independent measures for every operation:

* what Redis executed (``INFO commandstats`` deltas). On a Cluster only the
  primaries are counted (replicas re-execute every write they receive);
* how many times the client wrote to a socket (each write is one request, its
  replies are read afterwards: one write = one round trip).

Then: statistics counted in several processes add up in Redis.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.connection
from django.core.cache import caches
from redis.crc import key_slot

from tests.conftest import Target
from tests.redis_servers import RedisServer

MANY = 50


@dataclass
class Measured:
    commands: dict[str, int]
    sends: int


# Commands servers receive from each other, not from the cache: replicas ACK their
# primary every second, sentinels PING, PUBLISH hellos and ask INFO. A measurement
# that caught one of them is taken again (the cache's own commands would show up
# every time, so a cache that sent them still fails).
BACKGROUND = frozenset({"replconf", "publish", "ping", "info", "hello"})
ATTEMPTS = 8


class Meter:
    """Counts what one action costs, on the server and on the wire."""

    def __init__(
        self, target: Target, commandstats: Callable[[], dict[str, int]], nodes: int
    ) -> None:
        self.target = target
        self.cache = target.cache
        self._commandstats = commandstats
        # Reading INFO costs one HELLO (new connection) and one INFO per node.
        self._overhead = {"hello": nodes, "info": nodes}
        self.sends = 0

    def _delta(self, action: Callable[[], object]) -> tuple[dict[str, int], int]:
        before = self._commandstats()
        self.sends = 0
        action()
        sends = self.sends
        after = self._commandstats()
        delta = {
            name: after.get(name, 0) - before.get(name, 0) - self._overhead.get(name, 0)
            for name in after
        }
        return {name: calls for name, calls in delta.items() if calls}, sends

    def measure(self, action: Callable[[], object]) -> Measured:
        """Commands and socket writes of ``action`` (repeatable: it may run again)."""
        for _ in range(ATTEMPTS):
            commands, sends = self._delta(action)
            if not BACKGROUND & set(commands):
                break
        return Measured(commands, sends)


@pytest.fixture
def meter(target: Target, request: pytest.FixtureRequest, monkeypatch: Any) -> Iterator[Meter]:
    if target.mode == "cluster":
        primaries = request.getfixturevalue("redis_cluster").primaries()

        def commandstats() -> dict[str, int]:
            total: Counter[str] = Counter()
            for primary in primaries:
                total.update(primary.commandstats())
            return dict(total)

        nodes = len(primaries)
    else:
        commandstats = target.commandstats
        nodes = 1
    meter = Meter(target, commandstats, nodes)
    original = redis.connection.AbstractConnection.send_packed_command

    def counting_send(conn: Any, command: Any, check_health: bool = True) -> None:
        meter.sends += 1
        original(conn, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting_send)
    # Open the pooled connections (and load the incr script) before measuring.
    cache = target.cache
    cache.set("warm-up", 1)
    cache.get("warm-up")
    cache.incr("warm-up")
    cache.get_many([f"warm-{i}" for i in range(MANY)])
    cache.set_many({f"warm-{i}": i for i in range(MANY)})
    cache.delete_many([f"warm-{i}" for i in range(MANY)])
    yield meter


def _primaries_of(cache: Any, keys: list[str]) -> int:
    """How many cluster primaries hold ``keys``."""
    client = cache.get_client()
    return len({client.get_node_from_key(cache.make_key(k)).name for k in keys})


def test_meter_counts_socket_writes(meter: Meter) -> None:
    client = meter.cache.get_client()
    measured = meter.measure(lambda: (client.strlen("a"), client.strlen("b")))
    assert measured.commands == {"strlen": 2}
    assert measured.sends == 2


def test_get_hit_is_one_get(meter: Meter) -> None:
    meter.cache.set("k", {"v": 1})
    measured = meter.measure(lambda: meter.cache.get("k"))
    assert measured.commands == {"get": 1}
    assert measured.sends == 1


def test_get_miss_is_one_get(meter: Meter) -> None:
    measured = meter.measure(lambda: meter.cache.get("missing", "default"))
    assert measured.commands == {"get": 1}
    assert measured.sends == 1


def test_many_hits_do_no_bookkeeping(meter: Meter) -> None:
    cache = meter.cache
    cache.set("k", "v")

    def hits() -> None:
        for _ in range(20):
            assert cache.get("k") == "v"
            assert cache.get("absent") is None

    measured = meter.measure(hits)
    assert measured.commands == {"get": 40}
    assert measured.sends == 40


def test_set_is_one_set(meter: Meter) -> None:
    measured = meter.measure(lambda: meter.cache.set("k", "v", timeout=60))
    assert measured.commands == {"set": 1}
    assert measured.sends == 1
    measured = meter.measure(lambda: meter.cache.set("k", 12, timeout=None))
    assert measured.commands == {"set": 1}


def test_add_is_one_set(meter: Meter) -> None:
    added: list[bool] = []
    measured = meter.measure(lambda: added.append(meter.cache.add("k", "v")))
    assert measured.commands == {"set": 1}
    assert measured.sends == 1
    assert added[0] is True
    measured = meter.measure(lambda: added.append(meter.cache.add("k", "again")))
    assert measured.commands == {"set": 1}
    assert added[-1] is False
    assert meter.cache.get("k") == "v"


def test_single_key_commands_are_one_round_trip(meter: Meter) -> None:
    cache = meter.cache
    cache.set("k", "v")
    assert meter.measure(lambda: cache.delete("k")).commands == {"del": 1}
    assert meter.measure(lambda: cache.has_key("k")).commands == {"exists": 1}
    cache.set("k", "v")
    measured = meter.measure(lambda: cache.touch("k", 30))
    assert measured.commands == {"pexpire": 1}
    assert measured.sends == 1


def test_incr_is_one_evalsha(meter: Meter) -> None:
    cache = meter.cache
    cache.set("n", 1, timeout=100)
    results: list[int] = []
    measured = meter.measure(lambda: results.append(cache.incr("n", 5)))
    assert measured.commands.get("evalsha") == 1
    # EXISTS and INCRBY run inside the script; no other command reached Redis.
    assert set(measured.commands) <= {"evalsha", "exists", "incrby"}
    assert measured.sends == 1
    assert results[0] == 6
    measured = meter.measure(lambda: cache.decr("n"))
    assert measured.commands.get("evalsha") == 1
    assert set(measured.commands) <= {"evalsha", "exists", "incrby"}
    assert measured.sends == 1
    assert 90 <= cache.ttl("n") <= 100


def test_get_many_is_one_mget(meter: Meter) -> None:
    cache = meter.cache
    keys = [f"k{i}" for i in range(MANY)]
    cache.set_many({k: k for k in keys[::2]})
    result: dict[str, Any] = {}
    measured = meter.measure(lambda: result.update(cache.get_many(keys)))
    assert result == {k: k for k in keys[::2]}
    if meter.target.mode == "cluster":
        slots = {key_slot(cache.make_key(k).encode()) for k in keys}
        assert measured.commands == {"mget": len(slots)}
        assert measured.sends == _primaries_of(cache, keys) == 3
    else:
        assert measured.commands == {"mget": 1}
        assert measured.sends == 1


def test_set_many_is_one_pipeline_of_sets(meter: Meter) -> None:
    cache = meter.cache
    data = {f"k{i}": {"i": i} for i in range(MANY)}
    measured = meter.measure(lambda: cache.set_many(data, timeout=300))
    assert measured.commands == {"set": MANY}
    if meter.target.mode == "cluster":
        assert measured.sends == _primaries_of(cache, list(data)) == 3
    else:
        assert measured.sends == 1
    assert cache.get_many(list(data)) == data


def test_delete_many_is_one_del_on_a_single_server(meter: Meter) -> None:
    cache = meter.cache
    keys = [f"k{i}" for i in range(MANY)]
    cache.set_many(dict.fromkeys(keys, 1))
    measured = meter.measure(lambda: cache.delete_many(keys))
    assert set(measured.commands) == {"del"}
    if meter.target.mode != "cluster":
        assert measured.commands == {"del": 1}
        assert measured.sends == 1
    assert cache.get_many(keys) == {}


# -- statistics across processes -------------------------------------------------------

N = 40


def _entry(server_url: str) -> dict[str, Any]:
    return {
        "BACKEND": "django_creator_cache.backend.RedisCache",
        "LOCATION": server_url,
        "KEY_PREFIX": "xproc",
        "OPTIONS": {},
    }


def _work(cache: Any, name: str) -> None:
    """N sets, N hits and N misses, then flush the counts to Redis."""
    for i in range(N):
        cache.set(f"{name}-{i}", i)
        assert cache.get(f"{name}-{i}") == i
        assert cache.get(f"{name}-absent-{i}") is None
    if not cache.flush_stats():
        raise SystemExit(3)


def _spawned_worker(server_url: str, name: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django
    from django.conf import settings

    django.setup()
    settings.CACHES = {"default": _entry(server_url)}
    _work(caches["default"], name)


# A forked child (its counts added once, never the parent's again) is tested from a clean
# interpreter in tests/test_stats_exit.py: forking the pytest process would copy its threads.
def test_stats_add_up_across_processes(redis_server: RedisServer, settings: Any) -> None:
    settings.CACHES = {"default": _entry(redis_server.url)}
    cache = caches["default"]
    cache.clear()
    cache.flush_stats()
    # Counts this process has not flushed yet: they must count once.
    cache.get("parent-absent")
    cache.set("parent", 1)
    before = cache.stats(server=False)
    assert before["site_wide"] is True

    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_spawned_worker, args=(redis_server.url, f"w{n}")) for n in range(2)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0]

    after = cache.stats(server=False)
    assert after["site_wide"] is True
    assert after["hits"] - before["hits"] == 2 * N
    assert after["misses"] - before["misses"] == 2 * N
    assert after["sets"] - before["sets"] == 2 * N
    # The parent's own pending counts are still there, once.
    cache.flush_stats()
    assert cache.stats(server=False)["misses"] == after["misses"]
    stored = cache.get_client().hgetall(cache.internal_key("stats", cache.alias))
    assert int(stored[b"hits"]) >= 2 * N
