"""A circuit probe ended any way but an answer can never leave the breaker half-open.

Before: a probe cancelled by ``asyncio.wait_for`` (or an ASGI disconnect), or
interrupted by a signal handler's exception, left the breaker half-open for the
life of the process: every later call missed while Redis answered. Now the
execution layer releases the probe on any ``BaseException``, and a probe that
never reports back expires after ``probe_timeout``.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from redis.exceptions import ConnectionError as RedisConnectionError

from django_creator_cache.backend.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from tests.slow_proxy import SlowProxy

BACKEND = "django_creator_cache.backend.RedisCache"
COOLDOWN = 0.2


def test_a_probe_that_never_reports_back_expires() -> None:
    breaker = CircuitBreaker("t", failures=1, cooldown=0.0, probe_timeout=0.2)
    breaker.record_failure(RedisConnectionError("down"), "here")
    assert breaker.allow() is True  # the probe, which then vanishes (a killed thread)
    assert breaker.state == HALF_OPEN
    assert breaker.allow() is False  # one probe at a time...
    time.sleep(0.25)
    assert breaker.allow() is True  # ...until it is presumed lost


def test_an_abandoned_probe_lets_the_next_caller_probe() -> None:
    breaker = CircuitBreaker("t", failures=1, cooldown=0.0, probe_timeout=60)
    breaker.record_failure(RedisConnectionError("down"), "here")
    assert breaker.allow() is True
    breaker.abandon()
    assert breaker.allow() is True
    breaker.record_success()
    assert breaker.state == CLOSED


@pytest.fixture(params=["single", "cluster"])
def slow(request: pytest.FixtureRequest, settings: Any) -> Iterator[tuple[Any, list[SlowProxy]]]:
    options: dict[str, Any] = {
        "CIRCUIT_FAILURES": 1,
        "CIRCUIT_COOLDOWN": COOLDOWN,
        "SOCKET_TIMEOUT": 2.0,
        "RETRY_ATTEMPTS": 0,
    }
    if request.param == "single":
        _server, proxy = request.getfixturevalue("proxied_server")
        proxies = [proxy]
        location = proxy.url
    else:
        cluster = request.getfixturevalue("proxied_cluster")
        proxies = cluster.proxies
        location = ",".join(f"redis://127.0.0.1:{p.port}" for p in proxies)
        options["MODE"] = "cluster"
    settings.CACHES = {"default": {"BACKEND": BACKEND, "LOCATION": location, "OPTIONS": options}}
    cache = caches["default"]
    cache.set("k", "value")
    yield cache, proxies
    for proxy in proxies:
        proxy.delay = 0.0


def _open(cache: Any) -> None:
    """Open the circuit as an outage does, and let its cooldown pass."""
    cache.runtime.breaker.record_failure(RedisConnectionError("outage"), "test")
    assert cache.runtime.breaker.state == OPEN
    assert cache.get("k") is None  # short-circuited: no network
    time.sleep(COOLDOWN + 0.05)


def _stall(proxies: list[SlowProxy], delay: float) -> None:
    for proxy in proxies:
        proxy.delay = delay
        proxy.drop_connections()  # pooled connections start afresh (no late replies)


def _recovers(cache: Any) -> None:
    """Redis answers again: within a cooldown or two the cache hits again, circuit closed."""
    deadline = time.monotonic() + 5 * COOLDOWN + 1  # well before the probe would expire (4 s)
    while cache.get("k") != "value":
        assert time.monotonic() < deadline, f"breaker stuck {cache.runtime.breaker.state}"
        time.sleep(COOLDOWN / 2)
    assert cache.runtime.breaker.state == CLOSED


def test_a_cancelled_async_probe_does_not_leave_the_breaker_half_open(slow: Any) -> None:
    cache, proxies = slow
    _open(cache)
    _stall(proxies, 1.0)

    async def cancelled_probe() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(cache.aget("k"), timeout=0.1)

    asyncio.run(cancelled_probe())
    _stall(proxies, 0.0)
    _recovers(cache)


def test_a_probe_interrupted_by_a_signal_handler_does_not_stick(slow: Any) -> None:
    cache, proxies = slow
    _open(cache)
    _stall(proxies, 1.0)

    class RequestTimeout(Exception):
        """What a request-timeout handler (gunicorn, a watchdog) raises into the call."""

    def handler(signum: int, frame: Any) -> None:
        raise RequestTimeout

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(RequestTimeout):
            cache.get("k")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    _stall(proxies, 0.0)
    _recovers(cache)
