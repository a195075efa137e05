"""``health/cache/``: JSON for load balancers, 200 or 503, nothing secret, GET only."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import caches
from django.test import Client
from django.urls import reverse

from tests.conftest import Target, single_entry
from tests.redis_servers import RedisServer

URL = "/health/cache/"
PASSWORD = "s3cret-health"


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
