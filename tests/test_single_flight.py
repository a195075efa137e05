"""Single-flight ``get_or_set`` on real servers: stampedes, dead lock holders, early refresh."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.connection
from django.core.cache import caches

from django_creator_cache.cache_aside import ComputeLock
from django_creator_cache.cache_aside.single_flight import FAILURE_TTL
from django_creator_cache.checks import check_single_flight
from django_creator_cache.exceptions import CacheUnavailable, ProducerFailed
from tests.conftest import Target, single_entry
from tests.processes import CONTEXT, process
from tests.redis_servers import RedisServer

PROCESSES = 4
THREADS = 8
COMPUTE_SECONDS = 0.2


# Commands servers get from each other and from the measuring itself, never from a hit.
BACKGROUND = frozenset({"hello", "info", "ping", "publish", "replconf"})


def _commands(target: Target, action: Callable[[], object]) -> dict[str, int]:
    """What Redis executed during ``action`` (``INFO commandstats`` delta)."""
    counted = target.count_commands(action)
    return {name: n for name, n in counted.items() if name not in BACKGROUND}


def _calls(cache: Any) -> int:
    return int(cache.get_client().get(cache.make_key("calls")) or 0)


def _record_call(cache: Any) -> None:
    """What every computation does first: count itself in Redis (seen by every process)."""
    cache.get_client().incr(cache.make_key("calls"))


# -- a hit is one GET -----------------------------------------------------------------------


class _Sends:
    """Counts socket writes (one per round trip) of redis-py connections."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = redis.connection.AbstractConnection.send_packed_command

        def counting(conn: Any, command: Any, check_health: bool = True) -> None:
            self.count += 1
            original(conn, command, check_health)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)

    def during(self, action: Callable[[], object]) -> int:
        self.count = 0
        action()
        return self.count


def test_a_hit_is_one_get(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = target.cache
    cache.set("k", {"v": 1})
    sends = _Sends(monkeypatch)

    def compute() -> object:
        raise AssertionError("a hit must not compute")

    assert sends.during(lambda: cache.get_or_set("k", compute)) == 1
    assert _commands(target, lambda: cache.get_or_set("k", compute, 60)) == {"get": 1}
    # Through the async API too.
    assert _commands(target, lambda: asyncio.run(cache.aget_or_set("k", compute))) == {"get": 1}


def test_a_hit_with_early_refresh_is_one_round_trip(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = target.cache
    cache.set("k", "v", 300)
    sends = _Sends(monkeypatch)

    def read() -> None:
        assert cache.get_or_set("k", lambda: "new", 300, early_refresh=10) == "v"

    assert sends.during(read) == 1
    assert _commands(target, read) == {"get": 1, "pttl": 1}


def test_miss_costs(redis_server: RedisServer, settings: Any) -> None:
    """Single flight adds a lock, a second look and a release to a miss, nothing to a hit.

    On one server: a Cluster's replicas would count the writes again, asynchronously."""
    settings.CACHES = {"default": single_entry(redis_server)}
    cache = caches["default"]
    cache.clear()
    target = Target("single", cache, redis_server.commandstats)
    plain = _commands(target, lambda: cache.get_or_set("a", lambda: 1, single_flight=False))
    assert plain == {"get": 2, "set": 1}  # Django's: get, add, get
    cache.get_or_set("warm-up", lambda: 1)  # loads the release script
    flight = _commands(target, lambda: cache.get_or_set("b", lambda: 1))
    # GET (miss), SET NX PX (lock), GET + GET pipelined (look again: the value and a
    # failure mark), SET (value), and the release script: EVALSHA running GET + DEL.
    assert flight == {"get": 4, "set": 2, "evalsha": 1, "del": 1}
    assert cache.get("b") == 1 and cache.ttl("b") > 0


# -- one process, many threads ------------------------------------------------------------


def test_threads_compute_once_and_release_the_lock(target: Target) -> None:
    cache = target.cache
    results: list[Any] = []

    def compute() -> dict[str, int]:
        _record_call(cache)
        time.sleep(COMPUTE_SECONDS)
        return {"answer": 42}

    def call() -> None:
        results.append(caches["default"].get_or_set("cold", compute, 60))

    threads = [threading.Thread(target=call) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [{"answer": 42}] * THREADS
    assert _calls(cache) == 1
    assert 55 <= cache.ttl("cold") <= 60
    assert not cache.get_client().exists(ComputeLock(cache, "cold", None).key)


def test_a_failing_computation_releases_the_lock(target: Target) -> None:
    cache = target.cache

    def broken() -> object:
        raise RuntimeError("database down")

    def never() -> object:
        raise AssertionError("not run while the failure mark lives")

    with pytest.raises(RuntimeError, match="database down"):
        cache.get_or_set("k", broken)
    lock = ComputeLock(cache, "k", None)
    assert not cache.get_client().exists(lock.key)
    # The short failure mark: the next caller gets the error without running anything.
    assert 0 < cache.get_client().pttl(lock.mark) <= FAILURE_TTL * 1000
    with pytest.raises(ProducerFailed, match="RuntimeError: database down") as info:
        cache.get_or_set("k", never)
    assert isinstance(info.value, RuntimeError) and info.value.error.startswith("RuntimeError")
    time.sleep(FAILURE_TTL + 0.05)  # the mark is gone: computing again
    assert cache.get_or_set("k", lambda: "ok") == "ok"
    # failure_ttl=0: no mark, the next caller computes at once.
    with pytest.raises(RuntimeError):
        cache.get_or_set("k2", broken, failure_ttl=0)
    assert not cache.get_client().exists(ComputeLock(cache, "k2", None).mark)
    assert cache.get_or_set("k2", lambda: "ok") == "ok"


def test_async_failing_computation_leaves_its_mark(target: Target) -> None:
    cache = target.cache

    async def broken() -> object:
        raise RuntimeError("database down")

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="database down"):
            await cache.aget_or_set("k", broken)
        with pytest.raises(ProducerFailed, match="RuntimeError: database down"):
            await cache.aget_or_set("k", broken)
        await asyncio.sleep(FAILURE_TTL + 0.05)

        async def fine() -> str:
            return "ok"

        assert await cache.aget_or_set("k", fine) == "ok"

    asyncio.run(scenario())


def test_a_waiter_that_waited_long_enough_computes_itself(target: Target) -> None:
    cache = target.cache
    lock = ComputeLock(cache, "k", None, 30)
    assert lock.acquire() is True  # someone else is (very slowly) computing
    started = time.monotonic()
    assert cache.get_or_set("k", lambda: "mine", wait_timeout=0.3) == "mine"
    assert 0.3 <= time.monotonic() - started < 2
    assert cache.get("k") == "mine"
    lock.release()


# -- across processes ----------------------------------------------------------------------


def _stampede_worker(barrier: Any, results: Any, lock_timeout: float, tag: str) -> None:
    def compute() -> dict[str, Any]:
        _record_call(caches["default"])
        time.sleep(COMPUTE_SECONDS)
        return {"by": tag, "pid": os.getpid()}

    def call() -> None:
        barrier.wait(timeout=30)
        try:
            value = caches["default"].get_or_set("cold", compute, 60, lock_timeout=lock_timeout)
            results.put(("ok", value))
        except BaseException as exc:  # reported to the test, which fails on it
            results.put(("error", repr(exc)))

    caches["default"].get("warm-up")  # a spawned child connects before the barrier
    threads = [threading.Thread(target=call) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


def _collect(results: Any, count: int) -> list[tuple[str, Any]]:
    return [results.get(timeout=30) for _ in range(count)]


def test_stampede_across_processes_computes_once(target: Target) -> None:
    ctx = CONTEXT
    barrier = ctx.Barrier(PROCESSES * THREADS)
    results = ctx.Queue()
    procs = [process(_stampede_worker, barrier, results, 10.0, f"p{n}") for n in range(PROCESSES)]
    for proc in procs:
        proc.start()
    outcomes = _collect(results, PROCESSES * THREADS)
    for proc in procs:
        proc.join(30)
    assert [proc.exitcode for proc in procs] == [0] * PROCESSES
    assert {status for status, _ in outcomes} == {"ok"}
    values = [value for _, value in outcomes]
    assert all(value == values[0] for value in values)
    assert _calls(target.cache) == 1


PRODUCER_SECONDS = 1.0


def _failing_worker(barrier: Any, results: Any, use_async: bool) -> None:
    """THREADS callers (threads, or tasks of one event loop) of a producer that fails."""

    def failing() -> object:
        _record_call(caches["default"])
        time.sleep(PRODUCER_SECONDS)
        raise ValueError("upstream down")

    async def afailing() -> object:
        _record_call(caches["default"])
        await asyncio.sleep(PRODUCER_SECONDS)
        raise ValueError("upstream down")

    def outcome(exc: BaseException, started: float) -> tuple[str, str, float]:
        return (type(exc).__name__, str(exc), time.monotonic() - started)

    if use_async:

        async def one(started: float) -> tuple[str, str, float]:
            try:
                await caches["default"].aget_or_set("cold", afailing, 60)
            except BaseException as exc:
                return outcome(exc, started)
            return ("ok", "", time.monotonic() - started)

        async def all_of_them() -> None:
            await caches["default"].aget("warm-up")  # connected before the barrier
            barrier.wait(timeout=30)
            started = time.monotonic()
            for item in await asyncio.gather(*(one(started) for _ in range(THREADS))):
                results.put(item)

        asyncio.run(all_of_them())
        return

    caches["default"].get("warm-up")  # a spawned child connects before the barrier

    def call() -> None:
        barrier.wait(timeout=30)
        started = time.monotonic()
        try:
            caches["default"].get_or_set("cold", failing, 60)
            results.put(("ok", "", time.monotonic() - started))
        except BaseException as exc:
            results.put(outcome(exc, started))

    threads = [threading.Thread(target=call) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_waiters_get_a_failing_producers_error_promptly(target: Target, use_async: bool) -> None:
    """Callers in several processes share one failing run: not one failing run each in turn."""
    ctx = CONTEXT
    barrier = ctx.Barrier(PROCESSES if use_async else PROCESSES * THREADS)
    results = ctx.Queue()
    procs = [process(_failing_worker, barrier, results, use_async) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    outcomes = _collect(results, PROCESSES * THREADS)
    for proc in procs:
        proc.join(30)
    assert [proc.exitcode for proc in procs] == [0] * PROCESSES
    assert _calls(target.cache) == 1  # the producer ran once
    kinds = sorted(kind for kind, _, _ in outcomes)
    assert kinds == ["ProducerFailed"] * (PROCESSES * THREADS - 1) + ["ValueError"]
    assert all(
        "ValueError: upstream down" in text for kind, text, _ in outcomes if kind != "ValueError"
    )
    # A bound, not a benchmark: one run plus polling; eight runs in turn would take 8 s.
    slowest = max(took for _, _, took in outcomes)
    assert PRODUCER_SECONDS * 0.9 <= slowest < 2 * PRODUCER_SECONDS + 1.0


def _slow_holder(lock_timeout: float) -> None:
    def compute() -> str:
        _record_call(caches["default"])
        time.sleep(60)  # killed long before
        return "never"

    caches["default"].get_or_set("cold", compute, 60, lock_timeout=lock_timeout)


def test_a_killed_lock_holder_is_taken_over_after_the_lock_expires(target: Target) -> None:
    cache = target.cache
    lock_timeout = 1.0
    ctx = CONTEXT
    holder = process(_slow_holder, lock_timeout)
    holder.start()
    deadline = time.monotonic() + 10
    while _calls(cache) == 0:  # wait until it holds the lock and computes
        assert time.monotonic() < deadline and holder.is_alive()
        time.sleep(0.01)
    locked_at = time.monotonic()
    waiters = 2
    barrier = ctx.Barrier(waiters * THREADS)
    results = ctx.Queue()
    procs = [
        process(_stampede_worker, barrier, results, lock_timeout, f"w{n}") for n in range(waiters)
    ]
    for proc in procs:
        proc.start()
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    assert holder.exitcode == -signal.SIGKILL

    outcomes = _collect(results, waiters * THREADS)
    took = time.monotonic() - locked_at
    for proc in procs:
        proc.join(30)
    assert [proc.exitcode for proc in procs] == [0] * waiters
    assert {status for status, _ in outcomes} == {"ok"}  # no caller got an exception
    values = [value for _, value in outcomes]
    assert all(value == values[0] for value in values)
    assert values[0]["by"] in {"w0", "w1"} and values[0]["pid"] != holder.pid
    assert _calls(cache) == 2  # the dead holder, then exactly one taker
    assert lock_timeout * 0.9 <= took < lock_timeout + 5  # after the lock expired, bounded


def test_async_callers_compute_once(target: Target) -> None:
    cache = target.cache

    def compute() -> str:
        _record_call(cache)
        time.sleep(COMPUTE_SECONDS)
        return "v"

    async def stampede() -> list[Any]:
        return await asyncio.gather(*(cache.aget_or_set("cold", compute) for _ in range(10)))

    assert asyncio.run(stampede()) == ["v"] * 10
    assert _calls(cache) == 1


# -- early refresh and jitter -------------------------------------------------------------


def test_early_refresh_recomputes_once_while_others_read_the_current_value(
    target: Target,
) -> None:
    cache = target.cache
    versions = iter(["v1", "v2", "v3"])
    refreshing = threading.Event()

    def compute() -> str:
        _record_call(cache)
        value = next(versions)
        if value == "v2":
            refreshing.set()
            time.sleep(0.3)
        return value

    assert cache.get_or_set("k", compute, 60, early_refresh=5) == "v1"
    assert cache.get_or_set("k", compute, 60, early_refresh=5) == "v1"  # far from expiry
    cache.get_client().pexpire(cache.make_key("k"), 3000)  # now within the last 5 s
    refreshed: list[Any] = []
    refresher = threading.Thread(
        target=lambda: refreshed.append(cache.get_or_set("k", compute, 60, early_refresh=5))
    )
    refresher.start()
    assert refreshing.wait(5)
    started = time.monotonic()
    assert cache.get_or_set("k", compute, 60, early_refresh=5) == "v1"  # not blocked
    assert time.monotonic() - started < 0.2
    refresher.join(5)
    assert refreshed == ["v2"]
    assert cache.get("k") == "v2" and cache.ttl("k") > 55
    assert _calls(cache) == 2


def test_jitter_spreads_expiries(cache: Any) -> None:
    for i in range(20):
        cache.get_or_set(f"k{i}", lambda: 1, 100, jitter=0.5)
    ttls = {cache.ttl(f"k{i}") for i in range(20)}
    assert min(ttls) >= 99 and max(ttls) <= 150
    assert len(ttls) > 3


# -- Redis failures --------------------------------------------------------------------------


def test_redis_down_computes_without_waiting(own_redis_server: RedisServer, settings: Any) -> None:
    settings.CACHES = {"default": single_entry(own_redis_server)}
    cache = caches["default"]
    cache.set("warm", 1)
    own_redis_server.stop()
    started = time.monotonic()
    assert cache.get_or_set("k", lambda: "computed") == "computed"
    assert time.monotonic() - started < 2


def test_strict_mode_raises_when_redis_is_down(
    own_redis_server: RedisServer, settings: Any
) -> None:
    settings.CACHES = {"default": single_entry(own_redis_server, STRICT=True)}
    cache = caches["default"]
    cache.set("warm", 1)
    own_redis_server.stop()
    with pytest.raises(CacheUnavailable):
        cache.get_or_set("k", lambda: "computed")


def test_system_check_rejects_zero_lock_settings(settings: Any) -> None:
    assert check_single_flight() == []
    settings.CACHE_LOCK_TIMEOUT = 0
    settings.CACHE_LOCK_WAIT = 0
    errors = check_single_flight()
    assert [e.id for e in errors] == ["django_creator_cache.E030"] * 2
    assert "CACHE_LOCK_TIMEOUT" in errors[0].msg and "CACHE_LOCK_WAIT" in errors[1].msg
