"""Prometheus metrics (``CACHE_METRICS``), read the way a scraper reads them.

Every assertion goes through a real exporter path: ``metrics_view`` renders
prometheus_client's default registry and the text is parsed with
``prometheus_client.parser``. Each test measures its own alias (the measurements of
an alias live as long as the process), on real redis-server processes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.http import Http404
from django.test import RequestFactory
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from django_creator_cache import checks
from django_creator_cache.backend import RedisCache
from django_creator_cache.backend import metrics as measured
from django_creator_cache.ratelimit import Limiter
from django_creator_cache.views.metrics import metrics_view
from tests.conftest import BACKEND, flush, wait_until
from tests.redis_servers import RedisServer

REPO = Path(__file__).resolve().parent.parent
PREFIX = "django_creator_cache_"


# -- reading the exposition -----------------------------------------------------------------


def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ours the view shows: (sample name, labels) -> value."""
    response = metrics_view(RequestFactory().get("/metrics"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            if sample.name.startswith(PREFIX):
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """One sample's value; 0 when the exposition has no such sample."""
    return samples.get((PREFIX + name, frozenset(labels.items())), 0.0)


def entry(server: RedisServer, alias: str, **options: Any) -> dict[str, Any]:
    return {"BACKEND": BACKEND, "LOCATION": server.url, "OPTIONS": {"ALIAS": alias, **options}}


@pytest.fixture
def metered(settings: Any) -> Any:
    settings.CACHE_METRICS = True
    return settings


def backend(settings: Any, server: RedisServer, alias: str, **options: Any) -> RedisCache:
    settings.CACHES = {**settings.CACHES, alias: entry(server, alias, **options)}
    cache = caches[alias]
    assert isinstance(cache, RedisCache)
    flush(cache)
    return cache


# -- what an alias measures -----------------------------------------------------------------


def test_hits_misses_and_latency_per_operation(metered: Any, redis_server: RedisServer) -> None:
    cache = backend(metered, redis_server, "m_reads")
    cache.set("k", "v")
    for _ in range(3):
        assert cache.get("k") == "v"
    assert asyncio.run(cache.aget("k")) == "v"  # the async runner is measured too
    assert cache.get("absent") is None
    assert cache.get("absent") is None
    assert cache.get_many(["k", "absent", "other"]) == {"k": "v"}

    samples = scrape()
    a = "m_reads"
    assert value(samples, "operations_total", alias=a, operation="get", result="hit") == 4
    assert value(samples, "operations_total", alias=a, operation="get", result="miss") == 2
    assert value(samples, "operations_total", alias=a, operation="get_many", result="hit") == 1
    assert value(samples, "operations_total", alias=a, operation="get_many", result="miss") == 2
    assert value(samples, "operations_total", alias=a, operation="get", result="error") == 0

    # One observation per run: 6 gets, 1 set, 1 get_many.
    hist = "operation_duration_seconds"
    assert value(samples, f"{hist}_count", alias=a, operation="get") == 6
    assert value(samples, f"{hist}_count", alias=a, operation="set") == 1
    assert value(samples, f"{hist}_count", alias=a, operation="get_many") == 1
    assert 0 < value(samples, f"{hist}_sum", alias=a, operation="get") < 6 * 1.0
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in samples.items()
        if name == PREFIX + f"{hist}_bucket"
        and ("operation", "get") in labels
        and ("alias", a) in labels
    )
    assert [le for le, _ in buckets] == [*measured.BOUNDS, float("inf")]
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and counts[-1] == 6  # cumulative, +Inf is every call

    assert value(samples, "circuit_state", alias=a, state="closed") == 1
    assert value(samples, "circuit_state", alias=a, state="open") == 0


def test_outage_errors_short_circuits_and_fallback(
    metered: Any, own_redis_server: RedisServer
) -> None:
    options = {
        "SOCKET_TIMEOUT": 0.5,
        "SOCKET_CONNECT_TIMEOUT": 0.5,
        "RETRY_ATTEMPTS": 1,
        "RETRY_DELAY": 0.01,
        "CIRCUIT_FAILURES": 2,
        "CIRCUIT_COOLDOWN": 60,  # stays open for the test
        "LOCAL_FALLBACK": True,
    }
    cache = backend(metered, own_redis_server, "m_outage", **options)
    assert cache.set("k", "v") is True
    own_redis_server.stop()

    assert cache.get("k") is None
    assert cache.get("k") is None  # the second failure opens the circuit
    assert cache.get("k") is None  # answered by the open circuit
    assert cache.set("local", "x") is False  # kept by the local fallback
    assert cache.get("local") == "x"

    samples = scrape()
    a = "m_outage"
    assert value(samples, "operations_total", alias=a, operation="get", result="error") == 2
    assert value(samples, "operations_total", alias=a, operation="get", result="short_circuit") == 2
    assert value(samples, "operations_total", alias=a, operation="set", result="short_circuit") == 1
    assert value(samples, "operations_total", alias=a, operation="get", result="fallback") == 1
    assert value(samples, "operations_total", alias=a, operation="get", result="hit") == 0
    assert value(samples, "circuit_state", alias=a, state="open") == 1
    assert value(samples, "circuit_state", alias=a, state="closed") == 0
    assert value(samples, "operation_duration_seconds_count", alias=a, operation="get") == 4


def test_rate_limit_checks_per_group(metered: Any, redis_server: RedisServer) -> None:
    backend(metered, redis_server, "m_limits")
    login = Limiter("login", "2/m", cache="m_limits")
    search = Limiter("search", "5/m", cache="m_limits")
    assert [login.hit("10.0.0.1").allowed for _ in range(3)] == [True, True, False]
    assert search.hit("10.0.0.1").allowed
    login.peek("10.0.0.1")  # a peek counts nothing

    samples = scrape()
    a = "m_limits"
    checks_ = "ratelimit_checks_total"
    assert value(samples, checks_, alias=a, group="login", result="allowed") == 2
    assert value(samples, checks_, alias=a, group="login", result="refused") == 1
    assert value(samples, checks_, alias=a, group="search", result="allowed") == 1
    assert value(samples, checks_, alias=a, group="search", result="refused") == 0


def test_invalidations_and_entries_deleted(metered: Any, redis_server: RedisServer) -> None:
    cache = backend(metered, redis_server, "m_inval")
    cache.set("campaigns:1", "a", tags=["campaign"])
    cache.set("campaigns:2", "b", tags=["campaign"])
    cache.set("dash", "c", tags=["campaign"])
    cache.set("other:1", "d")
    cache.set("other:2", "e")
    assert cache.invalidate_tags("campaign") == 3
    assert cache.invalidate_prefix("campaigns") == 0  # already gone: an invalidation still
    assert cache.delete_pattern("other:*") == 2

    samples = scrape()
    a = "m_inval"
    assert value(samples, "invalidations_total", alias=a, kind="tags") == 1
    assert value(samples, "invalidated_entries_total", alias=a, kind="tags") == 3
    assert value(samples, "invalidations_total", alias=a, kind="prefix") == 1
    assert value(samples, "invalidated_entries_total", alias=a, kind="prefix") == 0
    assert value(samples, "invalidations_total", alias=a, kind="pattern") == 1
    assert value(samples, "invalidated_entries_total", alias=a, kind="pattern") == 2


def test_local_tier_hits(metered: Any, redis_server: RedisServer) -> None:
    cache = backend(metered, redis_server, "m_tier", LOCAL_TIER={"MAX_STALENESS": 1.0})
    tier = cache.local_tier
    assert tier is not None and tier.wait_serving(10), tier and tier.state()
    cache.set("k", "v")
    assert cache.get("k") == "v"  # from Redis, kept in the tier
    wait_until(lambda: cache.get("k") == "v" and _local_hits("m_tier") > 0, 5, "a local hit")
    samples = scrape()
    assert value(samples, "local_tier_hits_total", alias="m_tier") >= 1
    assert value(samples, "operations_total", alias="m_tier", operation="get", result="hit") >= 1


def _local_hits(alias: str) -> float:
    return value(scrape(), "local_tier_hits_total", alias=alias)


def test_single_flight_stampede(metered: Any, redis_server: RedisServer) -> None:
    """Six threads miss the same key at once: one computes, the others wait for it."""
    backend(metered, redis_server, "m_flight")
    threads = 6
    start = threading.Barrier(threads)
    computed = []
    results: list[Any] = []

    def produce() -> str:
        computed.append(1)
        time.sleep(0.5)  # long enough for every thread to find the lock taken
        return "value"

    def caller() -> None:
        start.wait(10)
        results.append(caches["m_flight"].get_or_set("hot", produce, 60))

    workers = [threading.Thread(target=caller) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert results == ["value"] * threads and len(computed) == 1

    samples = scrape()
    assert value(samples, "single_flight_computations_total", alias="m_flight") == 1
    assert value(samples, "single_flight_waits_total", alias="m_flight") == threads - 1
    assert (
        value(samples, "operations_total", alias="m_flight", operation="get", result="miss")
        == threads
    )


# -- metrics off ----------------------------------------------------------------------------


def test_off_the_alias_has_no_metrics_and_the_registry_none_of_ours(
    settings: Any, redis_server: RedisServer
) -> None:
    """Off (the default): no Metrics object, nothing of ours in the registry, a 404."""
    settings.CACHE_METRICS = True
    cache = backend(settings, redis_server, "m_toggle")
    cache.set("k", "v")
    assert cache.get("k") == "v"
    assert value(scrape(), "operations_total", alias="m_toggle", operation="get", result="hit")

    settings.CACHE_METRICS = False  # the backend is reset and re-reads it
    assert cache.get("k") == "v"
    assert cache.runtime.metrics is None
    assert not [m for m in REGISTRY.collect() if m.name.startswith(PREFIX)]
    with pytest.raises(Http404):
        metrics_view(RequestFactory().get("/metrics"))


OFF_SCRIPT = """
import os, django
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
django.setup()
from django.conf import settings
settings.CACHES = {"default": {"BACKEND": "django_creator_cache.backend.RedisCache",
                               "LOCATION": os.environ["REDIS_URL"]}}
from django.core.cache import cache
assert cache.set("off", "v") and cache.get("off") == "v" and cache.get("absent") is None
cache.invalidate_prefix("off")
assert cache.runtime.metrics is None
import sys
from prometheus_client import REGISTRY
ours = [m.name for m in REGISTRY.collect() if m.name.startswith("django_creator_cache")]
assert not ours, ours
assert "django_creator_cache.metrics" not in sys.modules  # never even imported
print("ok")
"""


def test_off_in_a_fresh_process_nothing_is_registered(redis_server: RedisServer) -> None:
    env = {**os.environ, "REDIS_URL": redis_server.url, "PYTHONPATH": str(REPO)}
    env.pop("CACHE_METRICS", None)
    done = subprocess.run(
        [sys.executable, "-c", OFF_SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# -- configuration --------------------------------------------------------------------------


def test_check_e050_without_prometheus_client(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CACHE_METRICS = True
    assert checks.check_metrics() == []
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    errors = checks.check_metrics()
    assert [e.id for e in errors] == ["django_creator_cache.E050"]
    settings.CACHE_METRICS = False
    assert checks.check_metrics() == []


def test_view_speaks_openmetrics_when_asked(metered: Any, redis_server: RedisServer) -> None:
    cache = backend(metered, redis_server, "m_view")
    cache.get("absent")
    request = RequestFactory().get("/metrics", HTTP_ACCEPT="application/openmetrics-text")
    response = metrics_view(request)
    assert response["Content-Type"].startswith("application/openmetrics-text")
    body = response.content.decode()
    assert (
        'django_creator_cache_operations_total{alias="m_view",operation="get",result="miss"} 1.0'
        in body
    )
    assert body.rstrip().endswith("# EOF")
