"""``health/cache/``: JSON for load balancers, 200 or 503, nothing secret, GET only;
bounded in time, kept a second per process, and answered by an open circuit at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.test import Client
from django.urls import reverse
from redis.connection import Connection

from django_creator_cache.health import ANSWER_SECONDS, forget_answers
from tests.conftest import Target, single_entry
from tests.redis_servers import RedisServer
from tests.slow_proxy import SlowProxy

URL = "/health/cache/"
PASSWORD = "s3cret-health"


@pytest.fixture(autouse=True)
def _no_kept_answers() -> Iterator[None]:
    forget_answers()
    yield
    forget_answers()


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """``[n]``: socket connections redis-py opened in this process."""
    count = [0]
    original = Connection._connect

    def counting_connect(conn: Connection) -> Any:
        count[0] += 1
        return original(conn)

    monkeypatch.setattr(Connection, "_connect", counting_connect)
    return count


def test_healthy(client: Client, redis_server: RedisServer, settings: Any) -> None:
    settings.CACHES = {"default": single_entry(redis_server)}
    assert reverse("django_creator_cache:health") == URL
    response = client.get(URL)  # anonymous: no login needed
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    body = response.json()
    assert body["healthy"] is True
    assert set(body["caches"]) == {"default"}
    result = body["caches"]["default"]
    assert set(result) == {"healthy", "latency_ms", "error"}
    assert result["healthy"] is True
    assert result["error"] is None
    assert 0 < result["latency_ms"] < 1000
    # no location, address or port for anonymous callers
    text = response.content.decode()
    assert "redis://" not in text and "127.0.0.1" not in text
    assert str(redis_server.port) not in text


def test_one_alias(client: Client, redis_server: RedisServer, settings: Any) -> None:
    settings.CACHES = {
        "default": single_entry(redis_server),
        "sessions": single_entry(redis_server, ALIAS="sessions"),
    }
    assert client.get(URL).json()["caches"].keys() == {"default", "sessions"}
    response = client.get(f"{URL}sessions/")
    assert response.status_code == 200
    assert response.json()["caches"].keys() == {"sessions"}
    assert client.get(f"{URL}nope/").status_code == 404


def test_get_only(client: Client, redis_server: RedisServer, settings: Any) -> None:
    settings.CACHES = {"default": single_entry(redis_server)}
    for method in (client.post, client.put, client.delete, client.head):
        assert method(URL).status_code == 405


def test_server_stopped(
    client: Client, own_redis_server: RedisServer, redis_server: RedisServer, settings: Any
) -> None:
    settings.CACHES = {
        "default": single_entry(own_redis_server, RETRY_DELAY=0.005),
        "other": single_entry(redis_server, ALIAS="other"),
        "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    settings.CACHE_HEALTH_RETRIES = 1
    settings.CACHE_HEALTH_INTERVAL = 0.01
    caches["default"].set("k", 1)
    own_redis_server.stop()
    response = client.get(URL)
    assert response.status_code == 503
    body = response.json()
    assert body["healthy"] is False
    assert body["caches"]["default"] == {
        "healthy": False,
        "latency_ms": None,
        "error": "ConnectionError",
    }
    assert body["caches"]["other"]["healthy"] is True
    assert "local" not in body["caches"]  # not on this backend
    assert str(own_redis_server.port) not in response.content.decode()
    assert client.get(f"{URL}other/").status_code == 200
    assert client.get(f"{URL}default/").status_code == 503

    own_redis_server.start()
    assert client.get(URL).status_code == 503  # the answer is kept about a second
    time.sleep(ANSWER_SECONDS)
    assert client.get(URL).status_code == 200


def test_no_password(client: Client, own_redis_server: RedisServer, settings: Any) -> None:
    with own_redis_server.client() as admin:
        admin.config_set("requirepass", PASSWORD)
    port = own_redis_server.port
    base = "django_creator_cache.backend.RedisCache"
    settings.CACHES = {
        "default": {"BACKEND": base, "LOCATION": f"redis://:{PASSWORD}@127.0.0.1:{port}/0"},
        "wrong": {"BACKEND": base, "LOCATION": f"redis://:bad{PASSWORD}@127.0.0.1:{port}/0"},
    }
    settings.CACHE_HEALTH_RETRIES = 0
    response = client.get(URL)
    assert response.status_code == 503
    body = response.json()
    assert body["caches"]["default"]["healthy"] is True
    assert body["caches"]["wrong"]["healthy"] is False
    assert body["caches"]["wrong"]["error"] == "AuthenticationError"
    assert PASSWORD not in response.content.decode()


def test_no_cache_on_this_backend(client: Client, settings: Any) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    response = client.get(URL)
    assert response.status_code == 200
    assert response.json() == {"healthy": True, "caches": {}}


@pytest.mark.slow
def test_every_mode(client: Client, target: Target) -> None:
    response = client.get(URL)
    assert response.status_code == 200
    assert response.json()["caches"]["default"]["healthy"] is True


# -- bounded, kept, and the breaker first -----------------------------------------------------

HEALTH_TIMEOUT = 0.5


def test_a_server_that_never_answers_costs_one_bounded_probe(
    client: Client, own_redis_server: RedisServer, settings: Any, connects: list[int]
) -> None:
    """Accepts connections, never replies: the answer comes within the documented bound
    (about CACHE_HEALTH_TIMEOUT, at most twice it), with no retries, and is then kept."""
    with SlowProxy(own_redis_server.address, delay=30) as proxy:
        settings.CACHES = {
            "default": {
                "BACKEND": "django_creator_cache.backend.RedisCache",
                "LOCATION": proxy.url,
                "OPTIONS": {"RETRY_ATTEMPTS": 3, "SOCKET_TIMEOUT": 5},  # not used by the probe
            }
        }
        settings.CACHE_HEALTH_TIMEOUT = HEALTH_TIMEOUT
        settings.CACHE_HEALTH_RETRIES = 5  # the anonymous endpoint does not retry
        started = time.monotonic()
        response = client.get(URL)
        took = time.monotonic() - started
        assert response.status_code == 503
        assert response.json()["caches"]["default"] == {
            "healthy": False,
            "latency_ms": None,
            "error": "TimeoutError",
        }
        assert took < 2 * HEALTH_TIMEOUT + 0.5, took
        assert proxy.accepted == 1 and connects[0] == 1  # one connection, no retry
        text = response.content.decode()
        assert str(proxy.port) not in text and "127.0.0.1" not in text
        # Within the second: answered from memory, no connection, no waiting.
        started = time.monotonic()
        for _ in range(10):
            assert client.get(URL).status_code == 503
        assert time.monotonic() - started < HEALTH_TIMEOUT
        assert proxy.accepted == 1 and connects[0] == 1


def test_requests_within_a_second_open_at_most_one_connection(
    client: Client, redis_server: RedisServer, settings: Any, connects: list[int]
) -> None:
    settings.CACHES = {"default": single_entry(redis_server)}
    results: list[int] = []

    def ask() -> None:
        results.append(Client().get(URL).status_code)

    threads = [threading.Thread(target=ask) for _ in range(8)]  # concurrent requests too
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    for _ in range(20):
        results.append(client.get(URL).status_code)
    assert results == [200] * 28
    assert connects[0] == 1
    time.sleep(ANSWER_SECONDS)
    assert client.get(URL).status_code == 200
    assert connects[0] == 2  # a new probe once the answer is a second old


def test_an_open_circuit_answers_503_at_once_without_the_network(
    client: Client, own_redis_server: RedisServer, settings: Any, connects: list[int]
) -> None:
    settings.CACHES = {
        "default": single_entry(
            own_redis_server, CIRCUIT_FAILURES=2, CIRCUIT_COOLDOWN=30, RETRY_ATTEMPTS=0
        )
    }
    cache = caches["default"]
    own_redis_server.stop()
    while cache.runtime.breaker.state != "open":
        assert cache.get("k", "miss") == "miss"
    before = connects[0]
    response = client.get(URL)
    assert response.status_code == 503
    assert response.json()["caches"]["default"] == {
        "healthy": False,
        "latency_ms": None,
        "error": "CircuitOpen",
    }
    assert connects[0] == before  # not one connection attempt
    assert cache.runtime.breaker.state == "open"  # and the backend's half-open probe is untouched
