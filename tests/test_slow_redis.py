"""A slow Redis: calls degrade within the command timeout and nothing hangs.

The backend talks to a real ``redis-server`` through ``SlowProxy`` (loopback TCP
proxy that holds replies back by ``delay`` seconds). Per-call times are checked
against a loose bound, the "nothing hangs" promise, not a benchmark; "no network
while the circuit is open" is checked on the proxy (no connection accepted, no
byte forwarded) and on redis-py's connection attempts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.connection import Connection

from django_creator_cache.backend import RedisCache
from django_creator_cache.exceptions import CacheUnavailable
from tests.conftest import wait_until
from tests.redis_servers import RedisServer
from tests.slow_proxy import SlowProxy

TIMEOUT = 0.2
RETRIES = 1
COOLDOWN = 1.0
# timeout x (retries + 1) plus backoff and scheduling: far below it is fine, above it hangs.
CALL_BOUND = 1.5
OPTIONS: dict[str, Any] = {
    "ALIAS": "slow",
    "SOCKET_TIMEOUT": TIMEOUT,
    "SOCKET_CONNECT_TIMEOUT": TIMEOUT,
    "RETRY_ATTEMPTS": RETRIES,
    "RETRY_DELAY": 0.01,
    "CIRCUIT_FAILURES": 3,
    "CIRCUIT_COOLDOWN": COOLDOWN,
}


@pytest.fixture
def proxy(own_redis_server: RedisServer) -> Iterator[SlowProxy]:
    with SlowProxy(own_redis_server.address) as slow:
        yield slow


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """``[n]``: socket connection attempts redis-py made in this process."""
    count = [0]
    original = Connection._connect

    def counting_connect(conn: Connection) -> Any:
        count[0] += 1
        return original(conn)

    monkeypatch.setattr(Connection, "_connect", counting_connect)
    return count


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


def test_proxy_forwards_and_delays_replies(own_redis_server: RedisServer) -> None:
    with SlowProxy(own_redis_server.address) as slow:
        client = redis.Redis(host=slow.host, port=slow.port, socket_timeout=2)
        try:
            assert client.set("k", "v") is True
            slow.delay = 0.3
            value, took = timed(lambda: client.get("k"))
            assert value == b"v" and took >= 0.3
            assert slow.accepted == 1 and slow.bytes_up > 0
        finally:
            client.close()
    assert slow.port and not any(t.is_alive() for t in slow._threads)


def test_slow_server_degrades_within_timeout_then_circuit_opens_then_recovers(
    proxy: SlowProxy, connects: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    cache = RedisCache(proxy.url, {"OPTIONS": OPTIONS})
    assert cache.set("k", "fast") is True
    assert cache.get("k") == "fast"

    proxy.delay = 1.0  # every reply now arrives long after the command timeout
    value, took = timed(lambda: cache.get("k", "default"))
    assert value == "default" and took < CALL_BOUND
    stored, took = timed(lambda: cache.set("k2", "slow"))
    assert stored is False and took < CALL_BOUND
    found, took = timed(lambda: cache.get_many(["k", "k2"]))
    assert found == {} and took < CALL_BOUND
    assert cache.runtime.breaker.state == "open"
    warnings = [r.getMessage() for r in caplog.records if r.name == "django_creator_cache"]
    assert len(warnings) == 1 and "TimeoutError" in warnings[0], warnings

    # Open: calls return at once, without a connection attempt or a byte sent.
    accepted, sent, attempts = proxy.accepted, proxy.bytes_up, connects[0]
    for n in range(20):
        assert cache.get("k", "default") == "default"
        assert cache.set(f"x{n}", n) is False
        assert cache.has_key("k") is False
        with pytest.raises(CacheUnavailable):
            cache.incr("counter")
    assert (proxy.accepted, proxy.bytes_up, connects[0]) == (accepted, sent, attempts)
    assert cache.stats(server=False)["short_circuits"] == 80

    proxy.delay = 0
    took = wait_until(
        lambda: cache.set("back", 1) and cache.get("back") == 1,
        COOLDOWN + 3,
        "the cache to work again",
    )
    assert took <= COOLDOWN + 3
    assert cache.get("k") == "fast"
    stats = cache.stats(server=False)
    assert stats["circuit"] == "closed" and stats["outages"] == 1, stats


def test_no_reply_of_a_timed_out_command_reaches_a_later_command(proxy: SlowProxy) -> None:
    # The circuit never opens here: every call goes to the (sometimes slow) server.
    cache = RedisCache(proxy.url, {"OPTIONS": {**OPTIONS, "CIRCUIT_FAILURES": 10_000}})
    keys = [f"key-{n}" for n in range(40)]
    assert cache.set_many({key: f"{key}:v0" for key in keys}) == []

    def check(key: str, value: Any) -> bool:
        """True if ``value`` is ``key``'s own; a miss (timed out) is allowed."""
        if value is None:
            return False
        assert isinstance(value, str) and value.startswith(f"{key}:"), (key, value)
        return True

    timeouts = answered = 0
    for n, key in enumerate(keys):
        # Every third call times out; its late reply (0.1 s past the timeout) would arrive
        # while the next command waits, if that command reused the same connection.
        proxy.delay = TIMEOUT + 0.1 if n % 3 == 0 else 0.0
        if n % 4 == 0:
            other = keys[(n + 7) % len(keys)]
            found, took = timed(lambda key=key, other=other: cache.get_many([key, other]))
            for k, v in found.items():
                check(k, v)
            ok = bool(found)
        elif n % 4 == 1:
            stored, took = timed(lambda key=key, n=n: cache.set(key, f"{key}:v{n}"))
            ok = stored
        else:
            value, took = timed(lambda key=key: cache.get(key))
            ok = check(key, value)
        assert took < CALL_BOUND
        timeouts += not ok
        answered += ok
    assert timeouts >= 5 and answered >= 10, (timeouts, answered)

    proxy.delay = 0.0
    final = cache.get_many(keys)
    assert set(final) == set(keys)
    for key in keys:
        assert check(key, final[key])
        assert check(key, cache.get(key))


@pytest.fixture
def debug_server() -> Iterator[RedisServer]:
    """A server that accepts ``DEBUG SLEEP`` (a busy Redis, without a proxy)."""
    with RedisServer(["--enable-debug-command", "local"]) as server:
        yield server


def test_a_timed_out_command_is_not_sent_again(debug_server: RedisServer) -> None:
    """A timeout is not retried: the command may have run, and an INCR run twice
    would silently count double. Redis is made busy for 0.5 s (DEBUG SLEEP); the
    INCR sent meanwhile times out after 0.3 s, and a retry would get through."""
    options = {**OPTIONS, "SOCKET_TIMEOUT": 0.3, "CIRCUIT_FAILURES": 100}
    cache = RedisCache(debug_server.url, {"OPTIONS": options})
    assert cache.set("n", 0, None) is True
    assert cache.incr("n") == 1  # the script is loaded, the connection is open
    admin = debug_server.client(socket_timeout=5)
    sleeper = threading.Thread(target=admin.execute_command, args=("DEBUG", "SLEEP", "0.5"))
    try:
        sleeper.start()
        time.sleep(0.05)  # the sleep has started: our INCR waits behind it
        result, took = timed(lambda: _incr_or_unavailable(cache))
        assert took < CALL_BOUND
        sleeper.join(5)
        assert not sleeper.is_alive()
        # Redis ran the INCR once when it woke up; the caller was told it is unknown.
        assert int(admin.get(cache.make_key("n"))) == 2, "the timed-out INCR was sent again"
        assert result is None
    finally:
        sleeper.join(5)
        admin.close()


def _incr_or_unavailable(cache: RedisCache) -> int | None:
    try:
        return cache.incr("n")
    except CacheUnavailable:
        return None
