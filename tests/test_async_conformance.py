"""The async API, natively on redis.asyncio, on single Redis, Sentinel and Cluster.

Every ``a*`` method of the backend runs here three times (``cache``/``target`` are
parametrized over the modes, see ``conftest.py``), against real servers. What these
tests hold the async side to: the same stored bytes, keys, statistics and failure
behaviour as the sync side; no worker thread (the loop's default executor refuses
work and the sync client refuses commands); one client per event loop, closed with it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
import redis
import redis.cluster
from django.core.cache import caches
from django.test import AsyncClient

from django_creator_cache.backend import RedisCache, async_connection
from django_creator_cache.cache_aside import cached
from django_creator_cache.exceptions import CacheUnavailable
from tests.conftest import LOCAL_TIER, Target, single_entry
from tests.redis_servers import RedisServer

T = TypeVar("T")
BACKGROUND = frozenset({"hello", "info", "ping", "publish", "replconf"})


class _NoThreads(ThreadPoolExecutor):
    """A default executor that refuses work: an ``a*`` method must not hop to a thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        raise AssertionError(f"an async cache call went to a worker thread: {fn!r}")


@pytest.fixture(autouse=True)
def _sync_client_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside ``run`` below, any command on a sync redis-py client fails the test."""

    def refuse(original: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _in_async_scenario.is_set() and threading.current_thread() is _loop_thread[0]:
                raise AssertionError(f"sync redis-py command {args[:1]} inside async code")
            return original(self, *args, **kwargs)

        return guarded

    monkeypatch.setattr(redis.Redis, "execute_command", refuse(redis.Redis.execute_command))
    monkeypatch.setattr(
        redis.cluster.RedisCluster,
        "execute_command",
        refuse(redis.cluster.RedisCluster.execute_command),
    )
    # The backend's short way to a single server (``backend.direct``) takes a sync
    # pooled connection without ``execute_command``.
    monkeypatch.setattr(
        redis.ConnectionPool, "get_connection", refuse(redis.ConnectionPool.get_connection)
    )


_in_async_scenario = threading.Event()
_loop_thread: list[threading.Thread | None] = [None]


def run(scenario: Callable[[], Awaitable[T]], *, threads: bool = False) -> T:
    """``asyncio.run`` with sync redis-py commands refused in the loop's thread, and no
    worker threads allowed (``threads=True``: Django's own handler may use them)."""

    async def main() -> T:
        if not threads:
            asyncio.get_running_loop().set_default_executor(_NoThreads())
        _loop_thread[0] = threading.current_thread()
        _in_async_scenario.set()
        try:
            return await scenario()
        finally:
            _in_async_scenario.clear()

    return asyncio.run(main())


def raw_client(cache: Any) -> Any:
    return cache.get_client()


# -- get / set / add / delete ----------------------------------------------------------------------


def test_get_set_add_delete(cache: Any) -> None:
    async def scenario() -> None:
        assert await cache.aget("missing") is None
        assert await cache.aget("missing", "fallback") == "fallback"
        assert await cache.aset("k", {"v": [1, 2]}) is True
        assert await cache.aget("k") == {"v": [1, 2]}
        assert await cache.aset("k", 1, xx=True) is True
        assert await cache.aset("new", 1, xx=True) is False
        assert await cache.aset("k", 2, nx=True) is False
        assert await cache.aadd("k", "other") is False
        assert await cache.aadd("fresh", "first") is True
        assert await cache.aget("fresh") == "first"
        assert await cache.adelete("fresh") is True
        assert await cache.adelete("fresh") is False
        assert await cache.ahas_key("fresh") is False
        assert await cache.ahas_key("k") is True

    run(scenario)
    assert cache.get("k") == 1


def test_async_and_sync_store_the_same_bytes(cache: Any) -> None:
    values = {"int": 42, "str": "héllo", "dict": {"a": [1, 2]}, "none": None, "big": 2**70}

    async def scenario() -> None:
        for name, value in values.items():
            await cache.aset(f"a-{name}", value)
        assert await cache.aget_many([f"s-{name}" for name in values]) == {
            f"s-{name}": value for name, value in values.items()
        }

    for name, value in values.items():
        cache.set(f"s-{name}", value)
    run(scenario)
    client = raw_client(cache)
    for name, value in values.items():
        assert client.get(cache.make_key(f"a-{name}")) == client.get(cache.make_key(f"s-{name}"))
        assert cache.get(f"a-{name}") == value


@pytest.mark.parametrize("timeout", [0, -1])
def test_timeout_zero_or_negative_deletes(cache: Any, timeout: int) -> None:
    cache.set("k", "v")

    async def scenario() -> None:
        assert await cache.aset("k", "w", timeout=timeout) is True
        assert await cache.ahas_key("k") is False
        assert await cache.aadd("free", "x", timeout=timeout) is True
        await cache.aset("taken", 1)
        assert await cache.aadd("taken", "x", timeout=timeout) is False

    run(scenario)
    assert cache.get("taken") == 1


def test_timeouts_and_ttl_extras(cache: Any) -> None:
    async def scenario() -> None:
        await cache.aset("forever", "v", timeout=None)
        assert await cache.attl("forever") is None
        assert await cache.apttl("forever") is None
        await cache.aset("short", "v", timeout=100)
        assert 98 <= await cache.attl("short") <= 100
        assert 98_000 <= await cache.apttl("short") <= 100_000
        assert await cache.attl("missing") == 0
        assert await cache.aexpire("forever", 50) is True
        assert 48 <= await cache.attl("forever") <= 50
        assert await cache.apexpire("forever", 20_000) is True
        assert 18_000 <= await cache.apttl("forever") <= 20_000
        assert await cache.apersist("forever") is True
        assert await cache.attl("forever") is None
        assert await cache.aexpire("forever", None) is False
        assert await cache.apersist("missing") is False
        assert await cache.aexpire_at("short", datetime.now(UTC) + timedelta(seconds=300)) is True
        assert 295 <= await cache.attl("short") <= 300
        assert await cache.apexpire_at("short", int((time.time() + 60) * 1000)) is True
        assert 55_000 <= await cache.apttl("short") <= 60_000
        assert await cache.atouch("short", 10) is True
        assert 8 <= await cache.attl("short") <= 10
        assert await cache.atouch("short", None) is True
        assert await cache.attl("short") is None
        assert await cache.atouch("missing", 10) is False
        assert await cache.aexpire("short", 0) is True
        assert await cache.aget("short") is None

    run(scenario)


def test_default_timeout(cache: Any) -> None:
    async def scenario() -> None:
        await cache.aset("k", 1)

    run(scenario)
    assert cache.default_timeout - 2 <= cache.ttl("k") <= cache.default_timeout


# -- many keys -------------------------------------------------------------------------------------


def test_get_set_delete_many(cache: Any) -> None:
    data = {f"many-{i}": {"i": i} for i in range(60)}  # spread over every primary of a Cluster

    async def scenario() -> None:
        assert await cache.aset_many(data, timeout=100) == []
        assert await cache.aget_many([*data, "absent"]) == data
        assert await cache.aget_many([]) == {}
        assert await cache.adelete_many(list(data)[:30]) == 30
        assert await cache.aget_many(data) == dict(list(data.items())[30:])
        assert await cache.aset_many({"z1": 1, "z2": 2}, timeout=0) == []
        assert await cache.aget_many(["z1", "z2"]) == {}
        assert await cache.adelete_many([]) == 0

    run(scenario)
    assert 98 <= cache.ttl("many-59") <= 100


def test_keys_iter_keys_delete_pattern(cache: Any) -> None:
    names = [f"user:{i}:profile" for i in range(25)] + ["campaign:1", "campaign:2"]

    async def scenario() -> None:
        await cache.aset_many(dict.fromkeys(names, 1))
        await cache.aset("user:99:profile", 1, version=2)
        assert sorted(await cache.akeys("user:*")) == sorted(names[:25])
        assert sorted([k async for k in cache.aiter_keys("user:*", itersize=5)]) == sorted(
            names[:25]
        )
        assert await cache.akeys("user:*", version=2) == ["user:99:profile"]
        assert await cache.adelete_pattern("user:*") == 25
        assert await cache.akeys("user:*") == []
        assert await cache.aget("user:99:profile", version=2) == 1

    run(scenario)


def test_clear(cache: Any) -> None:
    cache.set_many({f"k{i}": i for i in range(20)})

    async def scenario() -> None:
        assert await cache.aclear() is True
        assert await cache.aget_many([f"k{i}" for i in range(20)]) == {}

    run(scenario)


# -- counters --------------------------------------------------------------------------------------


def test_incr_decr(cache: Any) -> None:
    async def scenario() -> None:
        await cache.aset("n", 10, timeout=500)
        assert await cache.aincr("n") == 11
        assert await cache.aincr("n", 5) == 16
        assert await cache.adecr("n") == 15
        assert await cache.adecr("n", 20) == -5
        assert await cache.aget("n") == -5
        with pytest.raises(ValueError):
            await cache.aincr("missing")
        with pytest.raises(ValueError):
            await cache.adecr("missing")
        assert await cache.ahas_key("missing") is False
        assert await cache.aincr("fresh", 3, ignore_key_check=True) == 3

    run(scenario)
    assert 490 <= cache.ttl("n") <= 500  # INCRBY inside the script keeps the TTL
    assert cache.get("fresh") == 3


def test_incr_is_the_same_lua_script(target: Target) -> None:
    cache = target.cache
    cache.set("n", 1)

    def async_incr() -> None:
        asyncio.run(cache.aincr("n"))

    counted = {n: c for n, c in target.count_commands(async_incr).items() if n not in BACKGROUND}
    inside = {"exists": counted.pop("exists", 0), "incrby": counted.pop("incrby", 0)}
    assert inside["exists"] == 1  # the script ran once (a replica repeats its INCRBY)
    assert inside["incrby"] == (2 if target.mode == "cluster" else 1)
    # One script call; EVAL after a NOSCRIPT if this server had not seen it yet.
    assert counted in ({"evalsha": 1}, {"evalsha": 1, "eval": 1})
    assert cache.get("n") == 2


def test_incr_errors(cache: Any) -> None:
    async def scenario() -> None:
        for value in ["text", 1.5, [1]]:
            await cache.aset("v", value)
            with pytest.raises(TypeError):
                await cache.aincr("v")
            assert await cache.aget("v") == value
        await cache.aset("big", 2**70, timeout=500)
        assert await cache.aincr("big") == 2**70 + 1
        await cache.aset("edge", 2**63 - 1)
        assert await cache.aincr("edge") == 2**63
        assert await cache.aget("edge") == 2**63

    run(scenario)
    cache.sadd("a-set", 1)
    with pytest.raises(TypeError, match="not a counter"):
        asyncio.run(cache.aincr("a-set"))
    assert 490 <= cache.ttl("big") <= 500


def test_incr_is_atomic_under_concurrency(cache: Any) -> None:
    """Tasks of two event loops (two threads) and a sync thread increment one counter."""
    cache.set("hits", 0, timeout=None)
    per_task, tasks = 20, 20

    async def loop_load() -> None:
        async def worker() -> None:
            for _ in range(per_task):
                await cache.aincr("hits")

        await asyncio.gather(*(worker() for _ in range(tasks)))

    def sync_load() -> None:
        other = RedisCache(cache._server, cache._params)
        for _ in range(per_task * 5):
            other.incr("hits")

    threads = [
        threading.Thread(target=lambda: asyncio.run(loop_load())),
        threading.Thread(target=lambda: asyncio.run(loop_load())),
        threading.Thread(target=sync_load),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert cache.get("hits") == 2 * per_task * tasks + per_task * 5


def test_incr_decr_version(cache: Any) -> None:
    async def scenario() -> None:
        await cache.aset("g", "made", timeout=300)
        assert await cache.aincr_version("g") == 2
        assert await cache.aget("g") is None
        assert await cache.aget("g", version=2) == "made"
        assert await cache.adecr_version("g", version=2) == 1
        assert await cache.aget("g") == "made"
        with pytest.raises(ValueError):
            await cache.aincr_version("nope")

    run(scenario)
    assert 290 <= cache.ttl("g") <= 300


# -- get_or_set, @cached, invalidation -------------------------------------------------------------


def test_get_or_set(cache: Any) -> None:
    calls: list[int] = []

    async def compute() -> str:
        calls.append(1)
        await asyncio.sleep(0.05)
        return "made"

    async def scenario() -> None:
        got = await asyncio.gather(*(cache.aget_or_set("g", compute) for _ in range(8)))
        assert got == ["made"] * 8
        assert await cache.aget_or_set("g", "ignored") == "made"
        assert await cache.aget_or_set("plain", "value") == "value"
        assert await cache.aget_or_set("sync", lambda: "computed", 60) == "computed"
        assert await cache.aget_or_set("early", lambda: "e", 60, early_refresh=5) == "e"

    run(scenario)
    assert calls == [1]  # single flight: computed once for the 8 callers
    assert 58 <= cache.ttl("sync") <= 60


def test_a_hit_is_one_get_in_every_async_path(target: Target) -> None:
    cache = target.cache
    cache.set("k", "v")
    calls = (
        lambda: cache.aget("k"),
        lambda: cache.aget_or_set("k", lambda: "x"),
        lambda: cache.aget_many(["k"]),
    )
    expected: tuple[dict[str, int], ...] = ({"get": 1}, {"mget": 1})
    if LOCAL_TIER:
        # The first read fetches the value and its TTL (one script: EVALSHA, or EVAL on the
        # server's first sight of it); then every read is local.
        first = target.count_commands(lambda: asyncio.run(calls[0]()))
        scripts = first.get("eval", 0) + first.get("evalsha", 0)
        assert first.get("get") == 1 and 1 <= scripts <= 2, first
        expected = ({},)
    for call in calls:
        counted = target.count_commands(lambda call=call: asyncio.run(call()))
        assert {n: c for n, c in counted.items() if n not in BACKGROUND} in expected
    counted = target.count_commands(lambda: asyncio.run(cache.aset("k", "w")))
    sets = 2 if target.mode == "cluster" else 1  # a Cluster replica repeats the SET
    assert {n: c for n, c in counted.items() if n not in BACKGROUND} == {"set": sets}


def test_cached_coroutine_runs_in_the_callers_loop(cache: Any) -> None:
    seen: list[tuple[int, bool]] = []

    @cached(ttl=60)
    async def fetch(n: int) -> dict[str, int]:
        seen.append((threading.get_ident(), asyncio.current_task() is not None))
        return {"n": n}

    async def scenario() -> None:
        assert await fetch(1) == {"n": 1}
        assert await fetch(1) == {"n": 1}
        assert await fetch.ainvalidate(1) is True
        assert await fetch(1) == {"n": 1}

    run(scenario)
    assert seen == [(threading.get_ident(), True)] * 2


def test_invalidate_prefix_and_tags(cache: Any) -> None:
    async def scenario() -> None:
        await cache.aset("feed:a", 1, tags=["t1"])
        await cache.aset("feed:b", 2, tags=["t2"])
        await cache.aset_many({"feed:c": 3, "other": 4}, tags=["t1"])
        assert await cache.ainvalidate_tags("t1") == 3
        assert await cache.aget_many(["feed:a", "feed:b", "feed:c", "other"]) == {"feed:b": 2}
        assert await cache.ainvalidate_prefix("feed") == 1
        assert await cache.aget("feed:b") is None
        with pytest.raises(ValueError):
            await cache.ainvalidate_prefix("")

    run(scenario)


def test_lock(cache: Any) -> None:
    async def scenario() -> None:
        async with cache.alock("job", timeout=5, blocking_timeout=1):
            assert await cache.alock("job").acquire(blocking=False) is False
        assert await cache.alock("job").acquire(blocking=False) is True

    run(scenario)


# -- values Redis cannot give back -----------------------------------------------------------------


def test_corrupt_values_read_as_misses_and_are_deleted(cache: Any) -> None:
    client = raw_client(cache)
    client.set(cache.make_key("bad"), b"\x80\x05not a pickle")
    client.set(cache.make_key("bad2"), b"{json?")
    cache.set("good", "fine")

    async def scenario() -> None:
        assert await cache.aget("bad", "default") == "default"
        assert await cache.aget_many(["bad2", "good"]) == {"good": "fine"}

    run(scenario)
    assert client.exists(cache.make_key("bad")) == 0
    assert client.exists(cache.make_key("bad2")) == 0


# -- statistics ------------------------------------------------------------------------------------


def test_statistics_count_async_calls(cache: Any) -> None:
    before = cache.runtime.counters.snapshot()

    async def scenario() -> None:
        await cache.aset("s", 1)
        await cache.aget("s")
        await cache.aget("nope")
        await cache.aget_many(["s", "nope"])
        await cache.adelete("s")

    run(scenario)
    after = cache.runtime.counters.snapshot()
    delta = {name: after[name] - before[name] for name in after if after[name] != before[name]}
    if LOCAL_TIER:  # the second read of "s" is served locally
        assert delta == {"sets": 1, "hits": 1, "local_hits": 1, "misses": 2, "deletes": 1}
    else:
        assert delta == {"sets": 1, "hits": 2, "misses": 2, "deletes": 1}


# -- one client per event loop ---------------------------------------------------------------------


def test_one_client_per_event_loop_closed_with_it(target: Target) -> None:
    cache = target.cache
    baseline = async_connection.loops_with_clients()
    seen: list[Any] = []

    async def use() -> None:
        await cache.aset("loop", threading.get_ident())
        client = cache._aclient()
        assert cache._aclient() is client  # the same client for the whole loop
        assert caches["default"]._aclient() is client  # and for every backend of the alias
        seen.append(client)
        assert async_connection.loops_with_clients() >= baseline + 1

    asyncio.run(use())
    asyncio.run(use())
    threads = [threading.Thread(target=lambda: asyncio.run(use())) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(seen) == 5
    assert len({id(client) for client in seen}) == 5  # one client per loop
    assert async_connection.loops_with_clients() == baseline  # each closed with its loop


def test_connections_are_closed_when_the_loop_ends(own_redis_server: RedisServer) -> None:
    cache = RedisCache(own_redis_server.url, {"OPTIONS": {"ALIAS": "loops"}})

    def connected() -> int:
        with own_redis_server.client() as admin:
            return len(admin.client_list()) - 1  # not this admin connection

    before = connected()

    async def scenario() -> None:
        await asyncio.gather(*(cache.aset(f"k{i}", i) for i in range(10)))
        assert connected() > before

    asyncio.run(scenario())
    deadline = time.monotonic() + 5
    while connected() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert connected() == before


def test_a_loop_closed_without_shutdown_is_forgotten(cache: Any) -> None:
    loop = asyncio.new_event_loop()
    loop.run_until_complete(cache.aset("x", 1))
    loop.close()  # no shutdown_asyncgens: its entry stays until the next loop registers
    assert asyncio.run(cache.aget("x")) == 1
    assert all(not other.is_closed() for other in list(async_connection._loops))


# -- when Redis fails ------------------------------------------------------------------------------


@pytest.fixture
def failing(own_redis_server: RedisServer, settings: Any) -> Iterator[Any]:
    options = {
        "SOCKET_TIMEOUT": 0.5,
        "SOCKET_CONNECT_TIMEOUT": 0.5,
        "RETRY_ATTEMPTS": 0,
        "CIRCUIT_FAILURES": 2,
        "CIRCUIT_COOLDOWN": 0.5,
        "LOCAL_FALLBACK": True,
    }
    settings.CACHES = {"default": single_entry(own_redis_server, **options)}
    yield caches["default"], own_redis_server


def test_outage_degrades_then_recovers(failing: Any) -> None:
    cache, server = failing

    async def before() -> None:
        assert await cache.aset("k", "v") is True

    run(before)
    server.stop()

    async def during() -> None:
        assert await cache.aget("k", "d") == "d"
        assert await cache.aset("k", "w") is False
        assert await cache.aget_many(["k"]) == {}
        assert await cache.ahas_key("k") is False
        assert await cache.attl("k") == 0
        with pytest.raises(CacheUnavailable):
            await cache.aincr("k")
        with pytest.raises(CacheUnavailable):  # an invalidation that could not run says so
            await cache.ainvalidate_tags("t")
        assert await cache.aget_or_set("gos", lambda: "computed") == "computed"
        # The circuit is open now: calls fail fast, gets served by the local fallback.
        assert cache.runtime.breaker.state == "open"
        await cache.aset("local", "from-fallback")
        assert await cache.aget("local") == "from-fallback"

    short_before = cache.runtime.counters.short_circuits
    run(during)
    assert cache.runtime.counters.short_circuits > short_before
    server.start()
    time.sleep(0.6)  # the cool-down: the next call probes

    async def after() -> None:
        assert await cache.aset("k", "back") is True
        assert await cache.aget("k") == "back"
        assert await cache.aget("local") is None  # the fallback was dropped on recovery

    run(after)
    assert cache.runtime.breaker.state == "closed"


def test_strict_mode_raises(own_redis_server: RedisServer, settings: Any) -> None:
    options = {"STRICT": True, "RETRY_ATTEMPTS": 0, "SOCKET_CONNECT_TIMEOUT": 0.5}
    settings.CACHES = {"default": single_entry(own_redis_server, **options)}
    cache = caches["default"]
    own_redis_server.stop()

    async def scenario() -> None:
        for call in (
            lambda: cache.aget("k"),
            lambda: cache.aset("k", 1),
            lambda: cache.ahas_key("k"),
        ):
            with pytest.raises(CacheUnavailable):
                await call()

    run(scenario)


# -- whole responses -------------------------------------------------------------------------------


def test_async_view_uses_the_native_async_api(target: Target) -> None:
    """The page is read, locked, rendered and stored by the async methods in the loop's
    thread: a sync redis-py command there fails the test (``run``)."""

    async def scenario() -> list[tuple[str, bytes]]:
        client = AsyncClient()
        responses = [await client.get("/async/") for _ in range(2)]
        return [(r["X-Cache"], r.content) for r in responses]

    got = run(scenario, threads=True)
    assert [state for state, _ in got] == ["MISS", "HIT"]
    assert got[0][1] == got[1][1]

    def hit() -> None:
        run(scenario, threads=True)

    counted = {n: c for n, c in target.count_commands(hit).items() if n not in BACKGROUND}
    # Two requests, each one GET (none at all when the page is held by the local tier).
    assert counted == ({} if LOCAL_TIER else {"get": 2})
