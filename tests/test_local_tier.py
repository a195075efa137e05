"""The local read tier (``OPTIONS["LOCAL_TIER"]``): coherent with Redis through tracking.

What is held here: a local hit costs no round trip and is counted apart; a write by
this process is visible to its next read at once; a write by any other client is
applied as soon as Redis's invalidation message arrives, and never later than
``MAX_STALENESS`` after the writer's call returned (4 reader processes, single Redis and
Cluster); a value fetched while its key was invalidated is not kept; a key's TTL
holds locally; losing the tracking connection (or the node's primary role) flushes
the tier and bypasses it until tracking is back. The whole conformance suite, sync
and async, passes with the tier on (a subprocess with ``DCC_TEST_LOCAL_TIER=1``).
"""

from __future__ import annotations

import asyncio
import bisect
import multiprocessing
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from django_creator_cache.backend import RedisCache, local_tier
from django_creator_cache.backend.execution import Script
from django_creator_cache.backend.local_tier.resp import _RespReader
from django_creator_cache.backend.scripts import FETCH_ONE
from tests.conftest import flush, wait_until
from tests.redis_servers import RedisCluster, RedisServer

REPO = Path(__file__).resolve().parent.parent
BOUND = 0.5  # MAX_STALENESS of the coherence test


def tiered(location: str, alias: str, **tier: Any) -> RedisCache:
    options: dict[str, Any] = {"ALIAS": alias, "LOCAL_TIER": {"MAX_STALENESS": BOUND, **tier}}
    return RedisCache(location, {"OPTIONS": options})


def tiered_cluster(cluster: RedisCluster, alias: str, **tier: Any) -> RedisCache:
    options: dict[str, Any] = {
        "ALIAS": alias,
        "MODE": "cluster",
        "LOCAL_TIER": {"MAX_STALENESS": BOUND, **tier},
    }
    return RedisCache(cluster.location, {"OPTIONS": options})


def ready(cache: RedisCache) -> local_tier.LocalTier:
    tier = cache.local_tier
    assert tier is not None
    assert tier.wait_serving(10), tier.state()
    return tier


@pytest.fixture
def cache(redis_server: RedisServer) -> Iterator[RedisCache]:
    backend = tiered(redis_server.url, "tier")
    flush(backend)
    ready(backend)
    yield backend
    flush(backend)


# -- the tier itself --------------------------------------------------------------------------


def test_resp_reader_takes_messages_in_pieces() -> None:
    wire = (
        b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*2\r\n$2\r\nk1\r\n$2\r\nk2\r\n"
        b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*-1\r\n"
        b"*2\r\n$4\r\npong\r\n$0\r\n\r\n:42\r\n-ERR no\r\n"
    )
    reader = _RespReader()
    got = []
    for i in range(len(wire)):  # one byte at a time: never a partial message
        reader.feed(wire[i : i + 1])
        while (message := reader.gets()) is not local_tier.MISSING:
            got.append(message)
    assert got == [
        [b"message", b"__redis__:invalidate", [b"k1", b"k2"]],
        [b"message", b"__redis__:invalidate", None],
        [b"pong", b""],
        42,
        b"ERR no",
    ]


def test_a_hit_is_local_and_counted_apart(cache: RedisCache, redis_server: RedisServer) -> None:
    cache.set("k", {"v": 1}, 100)
    before = cache.runtime.counters.snapshot()
    assert cache.get("k") == {"v": 1}  # fetched (value and TTL), kept
    commands_before = redis_server.commandstats()
    assert [cache.get("k") for _ in range(50)] == [{"v": 1}] * 50
    assert cache.get_many(["k"]) == {"k": {"v": 1}}
    commands_after = redis_server.commandstats()
    assert commands_after.get("get", 0) == commands_before.get("get", 0)  # no round trip
    assert commands_after.get("eval", 0) == commands_before.get("eval", 0)
    after = cache.runtime.counters.snapshot()
    assert after["local_hits"] - before["local_hits"] == 51
    assert after["hits"] - before["hits"] == 1
    stats = cache.stats(server=False)
    assert stats["local_tier"]["serving"] is True
    assert stats["local_tier"]["entries"] == 1
    assert stats["hit_rate"] > 0.9
    # Each call returns its own object, as from Redis.
    first, second = cache.get("k"), cache.get("k")
    first["v"] = 2
    assert second == {"v": 1}


def test_writes_of_this_process_are_visible_at_once(cache: RedisCache) -> None:
    cache.set("k", 1)
    assert cache.get("k") == 1
    assert cache.get("k") == 1  # local now
    ops: list[tuple[Callable[[], Any], Any]] = [
        (lambda: cache.set("k", 2), 2),
        (lambda: cache.incr("k", 3), 5),
        (lambda: cache.decr("k"), 4),
        (lambda: cache.set_many({"k": 7}), 7),
        (lambda: cache.delete("k"), None),
        (lambda: cache.add("k", 8), 8),
        (lambda: cache.delete_many(["k"]), None),
        (lambda: asyncio.run(cache.aset("k", 9)), 9),
        (lambda: asyncio.run(cache.aincr("k")), 10),
        (lambda: asyncio.run(cache.adelete("k")), None),
    ]
    for write, expected in ops:
        write()
        assert cache.get("k") == expected  # no wait for any message
        cache.get("k")  # keep it local for the next write


def test_ttl_changes_and_expiry_hold_locally(cache: RedisCache) -> None:
    cache.set("short", "v", timeout=0.3)
    assert cache.get("short") == "v"
    assert cache.get("short") == "v"
    time.sleep(0.35)
    assert cache.get("short") is None  # the local copy expired with the key
    cache.set("t", "v", timeout=100)
    cache.get("t")
    assert cache.touch("t", 0.2) is True
    cache.get("t")
    time.sleep(0.25)
    assert cache.get("t") is None
    cache.set("p", "v", timeout=100)
    cache.get("p")
    cache.expire("p", 0)
    assert cache.get("p") is None


def test_other_writers_invalidate(cache: RedisCache, redis_server: RedisServer) -> None:
    """Another client's writes reach the tier within MAX_STALENESS (the promise); in
    practice at once, but Redis may send a writer its reply a moment before it sends the
    invalidation (a loaded CI machine once saw a stale read right after a FLUSHDB)."""
    other = RedisCache(redis_server.url, {"OPTIONS": {"ALIAS": "plain"}})
    cache.set_many({"a": 1, "b": 2, "c": 3})
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2, "c": 3}
    other.set("a", 10)  # a backend without the tier
    other.delete("b")
    other.incr("c")
    staleness = 1.0  # the default MAX_STALENESS
    wait_until(lambda: cache.get_many(["a", "b", "c"]) == {"a": 10, "c": 4}, staleness, "writes")
    with redis_server.client() as raw:
        raw.set(cache.make_key("a"), b"11")
        wait_until(lambda: cache.get("a") == 11, staleness, "a raw SET")
        raw.flushdb()  # a null invalidation: everything goes
    wait_until(lambda: cache.get_many(["a", "c"]) == {}, staleness, "a FLUSHDB")


def test_a_value_fetched_across_an_invalidation_is_not_kept(
    cache: RedisCache, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: the GET reply carries the old value, the invalidation of a newer write
    arrives before that reply is stored. The old value must not be kept."""
    cache.set("race", "old")
    tier = ready(cache)
    original = Script.send
    done = threading.Event()

    def fetch_then_write(request: Script, client: Any) -> Any:
        reply = original(request, client)
        if request.script is FETCH_ONE and not done.is_set():
            key = request.keys[0]
            done.set()
            seen = tier.invalidations
            with redis_server.client() as raw:
                raw.set(key, b"5")  # a newer value, written after the fetch was served
            wait_until(lambda: tier.invalidations > seen, 2, "the invalidation message")
        return reply

    monkeypatch.setattr(Script, "send", fetch_then_write)
    assert cache.get("race") == "old"  # what this read fetched
    assert cache.get("race") == 5  # not served "old" from the tier


def test_bounds_keys_prefixes_and_sizes(redis_server: RedisServer) -> None:
    cache = tiered(
        redis_server.url,
        "bounded",
        MAX_ENTRIES=3,
        MAX_VALUE_SIZE=100,
        KEY_PREFIXES=["feed:", "flags:"],
        TTL=0.2,
    )
    flush(cache)
    tier = ready(cache)
    assert tier.prefixes == (":1:feed:", ":1:flags:")
    cache.set_many({f"feed:{i}": i for i in range(5)} | {"other": 1, "flags:big": "x" * 500})
    assert [cache.get(f"feed:{i}") for i in range(5)] == list(range(5))
    assert len(tier) == 3  # an LRU of 3
    assert tier.get(cache.make_key("feed:0")) is local_tier.MISSING
    assert tier.get(cache.make_key("feed:4")) == b"4"
    assert cache.get("other") == 1  # not under KEY_PREFIXES: read from Redis, not kept
    assert tier.get(cache.make_key("other")) is local_tier.MISSING
    assert cache.get("flags:big") == "x" * 500  # larger than MAX_VALUE_SIZE: not kept
    assert tier.get(cache.make_key("flags:big")) is local_tier.MISSING
    assert cache.get_many(["feed:3", "feed:4"]) == {"feed:3": 3, "feed:4": 4}
    time.sleep(0.25)  # TTL caps how long a local copy lives
    assert tier.get(cache.make_key("feed:4")) is local_tier.MISSING


def test_async_reads_use_the_tier(cache: RedisCache) -> None:
    cache.set("k", "v")

    async def scenario() -> list[Any]:
        return [await cache.aget("k"), await cache.aget("k"), await cache.aget_many(["k"])]

    before = cache.runtime.counters.local_hits
    assert asyncio.run(scenario()) == ["v", "v", {"k": "v"}]
    assert cache.runtime.counters.local_hits - before == 2


# -- losing tracking ----------------------------------------------------------------------------


def _kill_tracking(server: RedisServer) -> None:
    with server.client() as raw:
        raw.execute_command("CLIENT", "KILL", "TYPE", "pubsub")


def test_lost_tracking_flushes_and_bypasses_until_back(own_redis_server: RedisServer) -> None:
    cache = tiered(own_redis_server.url, "lost")
    tier = ready(cache)
    cache.set("k", "v1")
    cache.get("k")
    assert cache.get("k") == "v1" and len(tier) == 1
    _kill_tracking(own_redis_server)
    wait_until(lambda: len(tier) == 0, 2, "the tier to be flushed")
    assert cache.get("k") == "v1"
    with own_redis_server.client() as raw:
        raw.set(cache.make_key("k"), b"2")  # written while nobody tracks for this process
    assert cache.get("k") == 2  # read from Redis: nothing stale is served
    assert tier.wait_serving(5)
    cache.get("k")
    assert cache.get("k") == 2 and len(tier) == 1

    own_redis_server.stop()  # the server goes: bypass (reads degrade as usual)
    wait_until(lambda: not tier.state()["serving"], 3, "the tier to stop serving")
    assert cache.get("k", "gone") == "gone"
    own_redis_server.start()
    assert tier.wait_serving(10)


def test_a_demoted_primary_is_not_trusted(own_redis_server: RedisServer) -> None:
    cache = tiered(own_redis_server.url, "demoted")
    tier = ready(cache)
    cache.set("k", 1)
    cache.get("k")
    with RedisServer() as primary:
        with own_redis_server.client() as raw:
            raw.execute_command("REPLICAOF", primary.host, str(primary.port))
        try:
            wait_until(lambda: not tier.state()["serving"], 2, "the tier to stop serving")
            time.sleep(BOUND)
            assert not tier.state()["serving"]  # still a replica: never trusted
            assert len(tier) == 0
        finally:
            with own_redis_server.client() as raw:
                raw.execute_command("REPLICAOF", "NO", "ONE")
    assert tier.wait_serving(10)


# A forked child gets its own tracking: tests/test_stats_exit.py, forked from a clean
# interpreter (forking the pytest process would copy its threads).


# -- coherence across processes ------------------------------------------------------------------

READERS = 4
RUN_SECONDS = 3.0
WRITES = 40


def _reader(
    location: str, options: dict[str, Any], keys: list[str], go: Any, stop: Any, out: Any
) -> None:
    """One reader process: read ``keys`` in a loop until the writer says it is done (and
    the staleness bound has passed); report (start, key, version) of reads."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()
    from django_creator_cache.backend import RedisCache

    cache = RedisCache(location, {"OPTIONS": options})
    for key in keys:
        cache.get(key)
    assert cache.local_tier is not None and cache.local_tier.wait_serving(10)
    out.put(("ready", os.getpid()))
    go.wait(30)
    reads: list[tuple[float, int, int]] = []
    deadline = time.monotonic() + 60  # a writer slowed down by a busy machine still ends
    while not stop.is_set() and (start := time.monotonic()) < deadline:
        for index, key in enumerate(keys):
            value = cache.get(key)
            reads.append((start, index, -1 if value is None else value[0]))
    out.put(("done", reads, cache.runtime.counters.local_hits))


def _coherence(location: str, options: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    writer = RedisCache(location, {"OPTIONS": {**options, "ALIAS": "writer"}})
    for key in keys:
        writer.set(key, (0, "x" * 50))
    ctx = multiprocessing.get_context("spawn")
    go, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_reader, args=(location, options, keys, go, stop, out))
        for _ in range(READERS)
    ]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            assert out.get(timeout=60)[0] == "ready"
        go.set()
        # Versions 1..WRITES per key, written while the readers read; when each set returned.
        returned: list[list[float]] = [[0.0] for _ in keys]
        time.sleep(0.2)
        for version in range(1, WRITES + 1):
            for index, key in enumerate(keys):
                writer.set(key, (version, "x" * 50))
                returned[index].append(time.monotonic())
            time.sleep((RUN_SECONDS - 1.2) / WRITES)
        time.sleep(BOUND + 0.5)  # every reader must have seen the last write by then
        stop.set()
        reports = []
        for _ in procs:
            kind, reads, local_hits = out.get(timeout=60)
            assert kind == "done"
            reports.append((reads, local_hits))
    finally:
        for proc in procs:
            proc.join(20)
            if proc.is_alive():
                proc.kill()
    assert [proc.exitcode for proc in procs] == [0] * READERS

    worst = 0.0
    for reads, local_hits in reports:
        assert local_hits > len(reads) // 2, "the readers did not read from their tier"
        last = [-1] * len(keys)
        for start, index, version in reads:
            assert version >= last[index], "a process read a value older than one it had read"
            last[index] = version
            # The newest version whose set() had returned before this read started.
            times = returned[index]
            newest = bisect.bisect_right(times, start) - 1
            if version < newest:
                stale_for = start - times[version + 1]  # since the next version returned
                worst = max(worst, stale_for)
                assert stale_for <= BOUND, f"read version {version} {stale_for:.3f}s late"
        assert max(last) == WRITES  # every reader saw the last write
    return {"worst_staleness": worst, "reads": sum(len(r) for r, _ in reports)}


def test_coherence_across_processes_single(redis_server: RedisServer) -> None:
    result = _coherence(
        redis_server.url, {"ALIAS": "coherent", "LOCAL_TIER": {"MAX_STALENESS": BOUND}}, ["c"]
    )
    print(f"single: {result}")


def test_coherence_across_processes_cluster(redis_cluster: RedisCluster) -> None:
    keys = [f"c{i}" for i in range(12)]
    fulls = [f":1:{k}" for k in keys]
    assert len({redis_cluster.primary_for_key(f).port for f in fulls}) == 3  # every primary
    assert len({key_slot(f.encode()) for f in fulls}) > 6
    options = {"ALIAS": "coherent", "MODE": "cluster", "LOCAL_TIER": {"MAX_STALENESS": BOUND}}
    result = _coherence(redis_cluster.location, options, keys)
    print(f"cluster: {result}")


# -- the conformance suite with the tier on --------------------------------------------------------


def test_conformance_suite_passes_with_the_local_tier() -> None:
    """tests/test_conformance.py and tests/test_async_conformance.py, every mode, tier on."""
    env = {**os.environ, "DCC_TEST_LOCAL_TIER": "1"}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "tests.test_local_tier_probe",
        "tests/test_conformance.py",
        "tests/test_async_conformance.py",
    ]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    tail = done.stdout[-3000:] + done.stderr[-2000:]
    assert done.returncode == 0, tail
    assert re.search(r"\b\d+ passed\b", done.stdout), tail
    assert " failed" not in done.stdout and " skipped" not in done.stdout, tail
    hits = re.search(r"LOCAL_TIER_HITS=(\d+)", done.stdout)
    assert hits and int(hits.group(1)) > 100, tail  # the tier did serve reads


# -- configuration ---------------------------------------------------------------------------------


def test_options_are_checked() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from django_creator_cache.backend.options import LocalTierOptions, resolve

    url = "redis://127.0.0.1:6379/0"
    assert resolve(url, {}).local_tier is None
    assert resolve(url, {"LOCAL_TIER": True}).local_tier == LocalTierOptions()
    got = resolve(url, {"LOCAL_TIER": {"MAX_ENTRIES": 5, "KEY_PREFIXES": ["a:"], "TTL": 2}})
    assert got.local_tier == LocalTierOptions(max_entries=5, key_prefixes=("a:",), ttl=2.0)
    for bad in (
        {"MAX_ENTRIES": 0},
        {"MAX_STALENESS": 0},
        {"MAX_STALENESS": "1s"},
        {"KEY_PREFIXES": "a:"},
        {"KEY_PREFIXES": [""]},
        {"SIZE": 1},
        "yes",
    ):
        with pytest.raises(ImproperlyConfigured, match="LOCAL_TIER"):
            resolve(url, {"LOCAL_TIER": bad})


def test_immutable_values_are_decoded_once_mutable_ones_on_every_hit(cache: RedisCache) -> None:
    cache.set("page", b"x" * 100, 100)
    cache.set("text", "words", 100)
    cache.set("rows", [{"v": 1}], 100)
    for key in ("page", "text", "rows"):
        cache.get(key)  # fetched and kept
    assert cache.get("page") is cache.get("page") == b"x" * 100
    assert cache.get_many(["text"])["text"] is cache.get("text") == "words"
    first, second = cache.get("rows"), cache.get_many(["rows"])["rows"]
    assert first == second == [{"v": 1}] and first is not second
    first[0]["v"] = 2
    assert cache.get("rows") == [{"v": 1}]
    cache.set("page", b"new", 100)  # this process's write: the kept value goes with it
    assert cache.get("page") == b"new"
