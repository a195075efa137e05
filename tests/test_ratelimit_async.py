"""Async rate limiting, natively on redis.asyncio: ``Limiter.ahit/apeek/areset`` and
``@rate_limited`` on async views, against real redis-servers.

"No thread hop" is enforced, not assumed: inside ``on_the_loop`` the loop's default
executor refuses work, ``sync_to_async`` refuses to be called, and a sync redis-py command
from any thread fails the test.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import asgiref.sync
import pytest
import redis
import redis.cluster
from asgiref.sync import SyncToAsync
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from django_creator_cache.ratelimit import ALGORITHMS, Limiter, rate_limited
from tests.conftest import Target
from tests.redis_servers import RedisServer

T = TypeVar("T")
BACKEND = "django_creator_cache.backend.RedisCache"
factory = RequestFactory()
# What the scripts run inside Redis, and what servers say to each other.
IN_SCRIPT = {"time", "zrange", "zremrangebyscore", "zcard", "zadd", "pexpire", "hmget", "hset"}
BACKGROUND = {"replconf", "publish", "ping", "info", "hello", "client"}


class _NoThreads(ThreadPoolExecutor):
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        raise AssertionError(f"async rate limiting went to a worker thread: {fn!r}")


_guarded = threading.Event()


@pytest.fixture(autouse=True)
def _sync_paths_refuse(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """While ``on_the_loop`` runs, ``sync_to_async`` and sync redis-py commands fail."""

    def refuse(original: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _guarded.is_set():
                raise AssertionError(f"sync call {args[:1]} inside async rate limiting")
            return original(self, *args, **kwargs)

        return guarded

    monkeypatch.setattr(asgiref.sync.SyncToAsync, "__call__", refuse(SyncToAsync.__call__))

    monkeypatch.setattr(redis.Redis, "execute_command", refuse(redis.Redis.execute_command))
    monkeypatch.setattr(
        redis.cluster.RedisCluster,
        "execute_command",
        refuse(redis.cluster.RedisCluster.execute_command),
    )
    monkeypatch.setattr(  # the backend's short way to a single server (backend.direct)
        redis.ConnectionPool, "get_connection", refuse(redis.ConnectionPool.get_connection)
    )
    yield
    _guarded.clear()


def on_the_loop(scenario: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        asyncio.get_running_loop().set_default_executor(_NoThreads())
        _guarded.set()
        try:
            return await scenario()
        finally:
            _guarded.clear()

    return asyncio.run(main())


@pytest.fixture
def backend(redis_server: RedisServer, settings: Any) -> Any:
    settings.CACHES = {
        "default": {
            "BACKEND": BACKEND,
            "LOCATION": redis_server.url,
            "KEY_PREFIX": f"rla-{uuid.uuid4().hex[:10]}",
        }
    }
    return caches["default"]


def get(remote: str = "203.0.113.9") -> HttpRequest:
    request: HttpRequest = factory.get("/", REMOTE_ADDR=remote)
    return request


class Member:
    is_authenticated = True

    def __init__(self, pk: int) -> None:
        self.pk = pk


# -- the core ------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_ahit_apeek_areset_count_where_the_sync_side_counts(target: Target, algorithm: str) -> None:
    limiter = Limiter("async-core", "3/m", algorithm=algorithm)

    async def scenario() -> list[Any]:
        hits = [await limiter.ahit("tiktok:7") for _ in range(4)]
        peeked = await limiter.apeek("tiktok:7")
        return [*hits, peeked]

    *hits, peeked = on_the_loop(scenario)
    assert [(u.allowed, u.remaining) for u in hits] == [(True, 2), (True, 1), (True, 0), (False, 0)]
    assert 0 < hits[3].retry_after <= 60 and hits[3].group == "async-core"
    assert peeked.remaining == 0 and not peeked.allowed
    # The sync side reads the same counter, under the same key.
    assert limiter.peek("tiktok:7").remaining == 0
    assert target.cache.get_client().exists(limiter.key("tiktok:7")) == 1
    assert on_the_loop(lambda: limiter.areset("tiktok:7")) is True
    assert limiter.peek("tiktok:7").remaining == 3
    assert on_the_loop(lambda: limiter.ahit("tiktok:7", cost=2)).remaining == 1
    with pytest.raises(ValueError, match="cost"):
        on_the_loop(lambda: limiter.ahit("tiktok:7", cost=4))


def test_one_evalsha_per_async_check(target: Target, request: pytest.FixtureRequest) -> None:
    limiter = Limiter("async-trip", "100/m")
    read: Callable[[], dict[str, int]] = target.commandstats
    if target.mode == "cluster":  # primaries only: replicas run the script's effects again
        primaries = request.getfixturevalue("redis_cluster").primaries()

        def read() -> dict[str, int]:
            return dict(sum((Counter(node.commandstats()) for node in primaries), Counter()))

    def stats() -> dict[str, int]:
        """INFO commandstats, read by a sync client: let it through the guard."""
        _guarded.clear()
        try:
            return read()
        finally:
            _guarded.set()

    async def scenario() -> dict[str, int]:
        await limiter.ahit("warm-up")  # connects this loop's client, loads the script
        before = stats()
        await limiter.ahit("x")
        after = stats()
        return {n: after[n] - before.get(n, 0) for n in after if after[n] != before.get(n, 0)}

    delta = on_the_loop(scenario)
    delta = {n: c for n, c in delta.items() if n not in BACKGROUND}
    assert delta.pop("evalsha") == 1, delta
    assert set(delta) <= IN_SCRIPT, delta


# -- the decorator on async views ----------------------------------------------------------------


def test_async_view_exact_under_concurrent_tasks_with_429_headers(backend: Any) -> None:
    counters = backend.runtime.counters
    before = (counters.ratelimit_allowed, counters.ratelimit_blocked)

    @rate_limited(rate="15/m")
    async def view(request: HttpRequest) -> HttpResponse:
        await asyncio.sleep(0)
        return HttpResponse("async")

    async def burst() -> list[HttpResponse]:
        return list(await asyncio.gather(*(view(get()) for _ in range(40))))

    responses = on_the_loop(burst)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 15, 429: 25}
    allowed = [r for r in responses if r.status_code == 200]
    assert sorted(int(r["RateLimit-Remaining"]) for r in allowed) == list(range(15))
    assert all(r["RateLimit-Limit"] == "15" for r in allowed)
    for refused in (r for r in responses if r.status_code == 429):
        assert 1 <= int(refused["Retry-After"]) <= 60
        assert refused["RateLimit-Remaining"] == "0" and refused["RateLimit-Limit"] == "15"
    assert on_the_loop(lambda: view(get("198.51.100.2"))).status_code == 200  # another IP
    assert (counters.ratelimit_allowed, counters.ratelimit_blocked) == (
        before[0] + 16,
        before[1] + 25,
    )


def test_async_user_keys_await_auser_and_never_touch_request_user(backend: Any) -> None:
    @rate_limited(rate="2/m", key="user")
    async def per_user(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    @rate_limited(rate="1/m", key="user_or_ip", group="either")
    async def either(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    def as_user(pk: int | None) -> HttpRequest:
        request = get()

        async def auser() -> Any:
            await asyncio.sleep(0)
            return Member(pk) if pk is not None else type("Anon", (), {"is_authenticated": False})

        request.auser = auser  # type: ignore[attr-defined]
        # request.user would query the session synchronously: it must not be read.
        assert not hasattr(request, "user")
        return request

    async def scenario() -> list[int]:
        codes = [(await per_user(as_user(1))).status_code for _ in range(3)]
        codes.append((await per_user(as_user(2))).status_code)  # another user
        codes += [(await per_user(as_user(None))).status_code for _ in range(3)]  # not counted
        codes += [(await either(as_user(3))).status_code for _ in range(2)]
        codes += [(await either(as_user(None))).status_code for _ in range(2)]  # by IP
        return codes

    assert on_the_loop(scenario) == [200, 200, 429, 200, 200, 200, 200, 200, 429, 200, 429]


def test_async_key_functions_and_block_false(backend: Any) -> None:
    async def api_key(request: HttpRequest) -> str | None:
        await asyncio.sleep(0)
        return request.headers.get("X-Api-Key")

    seen: list[bool] = []

    @rate_limited(rate="1/m", key=api_key, block=False)
    async def view(request: HttpRequest) -> HttpResponse:
        seen.append(request.ratelimit.limited)  # type: ignore[attr-defined]
        return HttpResponse("ran")

    async def scenario() -> list[int]:
        keyed = [factory.get("/", HTTP_X_API_KEY="k1") for _ in range(2)]
        return [(await view(r)).status_code for r in [*keyed, factory.get("/")]]

    assert on_the_loop(scenario) == [200, 200, 200]
    assert seen == [False, True, False]  # no key: not counted
    with pytest.raises(TypeError, match="async key function needs an async view"):
        rate_limited(rate="1/m", key=api_key)(lambda request: HttpResponse())


# -- Redis unavailable ---------------------------------------------------------------------------


def test_async_fail_open_then_closed_while_redis_is_down(
    own_redis_server: RedisServer, settings: Any
) -> None:
    options = {
        "SOCKET_TIMEOUT": 0.5,
        "SOCKET_CONNECT_TIMEOUT": 0.5,
        "RETRY_ATTEMPTS": 1,
        "RETRY_DELAY": 0.01,
        "CIRCUIT_FAILURES": 2,
        "CIRCUIT_COOLDOWN": 1.0,
    }
    settings.CACHES = {
        "default": {"BACKEND": BACKEND, "LOCATION": own_redis_server.url, "OPTIONS": options}
    }
    counters = caches["default"].runtime.counters

    @rate_limited(rate="1/m")
    async def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    async def requests(n: int) -> list[HttpResponse]:
        return [await view(get()) for _ in range(n)]

    assert [r.status_code for r in on_the_loop(lambda: requests(2))] == [200, 429]
    own_redis_server.stop()
    responses = on_the_loop(lambda: requests(4))  # the circuit opens after 2 failures
    assert [r.status_code for r in responses] == [200] * 4
    assert not responses[-1].has_header("RateLimit-Remaining")
    assert counters.ratelimit_failopen == 4
    assert caches["default"].runtime.breaker.state == "open"
    settings.RATELIMIT_FAIL_OPEN = False
    refused = on_the_loop(lambda: requests(1))[0]
    assert refused.status_code == 429 and refused["Retry-After"] == "1"
    assert counters.ratelimit_failclosed == 1
    own_redis_server.start()
    time.sleep(1.05)
    assert [r.status_code for r in on_the_loop(lambda: requests(2))] == [200, 429]
    assert caches["default"].runtime.breaker.state == "closed"
