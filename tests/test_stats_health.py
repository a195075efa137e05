"""Health checks, statistics, secrets kept out of output, and life with Redis down."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches

from django_creator_cache.backend.ops import server as server_ops
from django_creator_cache.exceptions import CacheUnavailable
from tests.conftest import Target, single_entry
from tests.redis_servers import RedisServer

PASSWORD = "s3cret"


# -- health -----------------------------------------------------------------------


def test_health_is_healthy_with_latency(target: Target, monkeypatch: Any) -> None:
    pinged: list[Any] = []
    real_fresh = server_ops._fresh

    def counting_fresh(pool: Any, timeout: float) -> Any:
        pinged.append(pool)
        return real_fresh(pool, timeout)

    monkeypatch.setattr(server_ops, "_fresh", counting_fresh)
    health = target.cache.health()
    # every primary is pinged, once
    assert len(pinged) == len(set(map(id, pinged))) == (3 if target.mode == "cluster" else 1)
    assert health["healthy"] is True
    assert health["alias"] == "default"
    assert health["error"] is None
    assert health["attempts"] == 1
    assert isinstance(health["latency_ms"], float)
    assert 0 < health["latency_ms"] < 1000


@pytest.fixture
def down_cache(own_redis_server: RedisServer, settings: Any) -> Iterator[Any]:
    """The default alias on a server that has answered once, then stopped.

    Retries stay on (a short delay keeps the test fast): a refused connection is
    still retried, and every call must still degrade.
    """
    settings.CACHES = {"default": single_entry(own_redis_server, RETRY_DELAY=0.005)}
    cache = caches["default"]
    assert cache.set("before", "v") is True
    own_redis_server.stop()
    yield cache


def test_health_of_a_stopped_server(
    down_cache: Any, own_redis_server: RedisServer, settings: Any, monkeypatch: Any
) -> None:
    pings: list[float] = []
    real_fresh = server_ops._fresh

    def counting_fresh(pool: Any, timeout: float) -> Any:
        pings.append(timeout)
        return real_fresh(pool, timeout)

    monkeypatch.setattr(server_ops, "_fresh", counting_fresh)
    settings.CACHE_HEALTH_RETRIES = 2
    settings.CACHE_HEALTH_INTERVAL = 0.01
    settings.CACHE_HEALTH_TIMEOUT = 0.5
    health = down_cache.health()
    assert health["healthy"] is False
    assert health["latency_ms"] is None
    assert health["attempts"] == 3
    # bounded: one connection attempt per try, each within the health timeout
    assert len(pings) == 3 and all(0.4 < p <= 0.5 for p in pings), pings
    assert "Connection" in health["error"]
    assert str(own_redis_server.port) in health["error"]

    pings.clear()
    settings.CACHE_HEALTH_RETRIES = 0
    assert down_cache.health()["attempts"] == 1
    assert len(pings) == 1

    pings.clear()
    own_redis_server.start()
    health = down_cache.health()
    assert health["healthy"] is True
    assert health["attempts"] == 1
    assert len(pings) == 1


# -- statistics -----------------------------------------------------------------------


def test_stats_fields(target: Target) -> None:
    cache = target.cache
    before = cache.stats(server=False)
    cache.set_many({f"k{i}": i for i in range(10)})
    cache.get("k1")
    cache.get("k2")
    cache.get("missing")
    cache.get_many(["k3", "missing2"])
    cache.delete("k9")
    stats = cache.stats()
    assert stats["alias"] == "default"
    assert stats["mode"] == target.mode
    assert stats["location"] == cache.options.safe_location
    assert stats["hits"] - before["hits"] == 3
    assert stats["misses"] - before["misses"] == 2
    assert stats["sets"] - before["sets"] == 10
    assert stats["deletes"] - before["deletes"] == 1
    assert stats["errors"] == before["errors"]
    assert 0 < stats["hit_rate"] <= 1
    assert stats["site_wide"] is True
    assert stats["available"] is True
    assert stats["keys"] == 9
    assert stats["used_memory"] > 100_000
    assert stats["used_memory_peak"] >= stats["used_memory"] // 2
    assert stats["redis_version"].startswith("7.")
    assert stats["uptime_seconds"] >= 0
    assert stats["evicted_keys"] == 0
    nodes = stats["nodes"]
    assert len(nodes) == (3 if target.mode == "cluster" else 1)
    assert sum(node["keys"] for node in nodes) == 9
    assert all(node["address"].startswith("127.0.0.1:") for node in nodes)
    assert "keys" not in cache.stats(server=False)


def test_stats_are_not_counted_twice_after_a_flush(target: Target) -> None:
    cache = target.cache
    cache.set("k", 1)
    cache.get("k")
    cache.get("nope")
    pending = cache.stats(server=False)
    assert cache.flush_stats() is True
    flushed = cache.stats(server=False)
    for name in ("hits", "misses", "sets", "deletes"):
        assert flushed[name] == pending[name]
    stored = cache.get_client().hgetall(cache.internal_key("stats", cache.alias))
    assert int(stored[b"sets"]) >= 1
    # the statistics hash is under the alias's prefix, not among user keys
    assert cache.keys("*") == ["k"]


# -- secrets ---------------------------------------------------------------------------


@pytest.fixture
def secret_server() -> Iterator[RedisServer]:
    """A server that requires ``PASSWORD``.

    Set after start-up: ``RedisServer(["--requirepass", ...])`` never becomes ready,
    as its readiness check connects without a password.
    """
    with RedisServer() as server:
        with server.client() as admin:
            admin.config_set("requirepass", PASSWORD)
        yield server


def _no_secret(text: str) -> None:
    assert PASSWORD not in text


def test_password_never_shown(
    secret_server: RedisServer, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    location = f"redis://:{PASSWORD}@127.0.0.1:{secret_server.port}/0"
    wrong = f"redis://:wr0ng-{PASSWORD}@127.0.0.1:{secret_server.port}/0"
    base = "django_creator_cache.backend.RedisCache"
    settings.CACHES = {
        "default": {"BACKEND": base, "LOCATION": location},
        "wrong": {"BACKEND": base, "LOCATION": wrong},
        "option": {
            "BACKEND": base,
            "LOCATION": f"redis://127.0.0.1:{secret_server.port}/0",
            "KEY_PREFIX": "opt",
            "OPTIONS": {"PASSWORD": PASSWORD},
        },
    }
    cache, wrong_cache, option_cache = caches["default"], caches["wrong"], caches["option"]
    caplog.set_level(logging.DEBUG)
    settings.CACHE_HEALTH_INTERVAL = 0.01

    assert cache.set("k", "v") is True
    assert cache.get("k") == "v"
    assert option_cache.set("k", "o") is True
    stats = cache.stats()
    assert stats["available"] is True
    assert stats["location"] == f"redis://:***@127.0.0.1:{secret_server.port}/0"
    _no_secret(repr(stats))
    _no_secret(repr(option_cache.stats()))
    _no_secret(repr(cache.health()))

    # wrong password: the failure is logged, without either password
    assert wrong_cache.get("k", "d") == "d"
    assert wrong_cache.set("k", "x") is False
    _no_secret(repr(wrong_cache.stats()))
    _no_secret(repr(wrong_cache.health()))

    # server gone: failures are logged, without the password
    secret_server.stop()
    assert cache.get("k", "d") == "d"
    assert option_cache.set("k", 1) is False
    with pytest.raises(CacheUnavailable) as info:
        cache.incr("k")
    _no_secret(str(info.value))
    _no_secret(repr(info.value.cause))
    _no_secret(repr(cache.stats()))
    health = cache.health()
    assert health["healthy"] is False
    _no_secret(repr(health))

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) >= 3  # wrong password, and each alias losing its server
    for record in caplog.records:
        _no_secret(record.getMessage())
        _no_secret(repr(record.args))
        _no_secret(record.exc_text or "")
    _no_secret(caplog.text)


# -- Redis down -------------------------------------------------------------------------


def test_redis_down_reads_miss_and_writes_report_failure(down_cache: Any) -> None:
    cache = down_cache
    errors_before = cache.stats(server=False)["errors"]
    short_before = cache.stats(server=False)["short_circuits"]
    assert cache.get("before") is None
    assert cache.get("before", "default") == "default"
    assert cache.set("k", "v") is False
    assert cache.add("k", "v") is False
    assert cache.delete("before") is False
    assert cache.get_many(["before", "k"]) == {}
    assert cache.set_many({"a": 1, "b": 2}) == ["a", "b"]
    cache.delete_many(["a", "b"])
    assert cache.has_key("before") is False
    assert "before" not in cache
    assert cache.touch("before", 10) is False
    assert cache.get_or_set("g", lambda: "computed") == "computed"
    assert cache.ttl("before") == 0
    assert cache.keys("*") == []
    assert list(cache.iter_keys("*")) == []
    assert cache.delete_pattern("*") == 0
    assert cache.clear() is False
    with pytest.raises(CacheUnavailable) as info:
        cache.incr("before")
    assert info.value.operation == "incr"
    assert info.value.alias == "default"
    with pytest.raises(CacheUnavailable):
        cache.decr("before")
    with pytest.raises(CacheUnavailable):
        cache.incr_version("before")
    stats = cache.stats()
    assert stats["site_wide"] is False
    assert stats["available"] is False
    # The first failures reach the network; then the circuit opens and the rest fail fast.
    failed_calls = stats["errors"] - errors_before + stats["short_circuits"] - short_before
    assert failed_calls >= 15
    assert stats["short_circuits"] > short_before


def test_redis_down_logs_one_warning(down_cache: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="django_creator_cache")
    for _ in range(5):
        down_cache.get("k")
        down_cache.set("k", 1)
    warnings = [r for r in caplog.records if r.name == "django_creator_cache"]
    assert len(warnings) == 1
    assert "unavailable" in warnings[0].getMessage()


def test_cache_comes_back_with_redis(down_cache: Any, own_redis_server: RedisServer) -> None:
    assert down_cache.set("k", "v") is False
    own_redis_server.start()
    assert down_cache.set("k", "v") is True
    assert down_cache.get("k") == "v"
    assert down_cache.incr_version("k") == 2


def test_strict_mode_raises(own_redis_server: RedisServer, settings: Any) -> None:
    settings.CACHES = {"default": single_entry(own_redis_server, STRICT=True)}
    cache = caches["default"]
    assert cache.set("k", "v") is True
    assert cache.get("k") == "v"
    own_redis_server.stop()
    with pytest.raises(CacheUnavailable) as info:
        cache.get("k")
    assert info.value.operation == "get"
    with pytest.raises(CacheUnavailable):
        cache.set("k", "v")
    with pytest.raises(CacheUnavailable):
        cache.get_many(["k"])
    with pytest.raises(CacheUnavailable):
        cache.has_key("k")
    with pytest.raises(CacheUnavailable):
        cache.incr("k")
