"""Statistics history for the admin chart: sampling at most once a minute, a capped list."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches

from django_creator_cache import history
from django_creator_cache.stats import registry
from django_creator_cache.views.charts import chart
from tests.conftest import Target, flush, single_entry
from tests.redis_servers import RedisServer
from tests.test_admin_page import fresh


@pytest.fixture(autouse=True)
def _fresh_history() -> Iterator[None]:
    history.reset()
    yield
    history.reset()


@pytest.fixture
def site_cache(redis_server: RedisServer, settings: Any) -> Iterator[Any]:
    settings.CACHES = {"default": {**single_entry(redis_server), "KEY_PREFIX": "site"}}
    cache = caches["default"]
    fresh(cache)
    yield cache
    flush(cache)


def test_sample_at_most_once_per_interval_site_wide(
    site_cache: Any, redis_server: RedisServer, settings: Any
) -> None:
    site_cache.set("a", 1)
    site_cache.get("a")
    site_cache.get("b")
    assert history.history_key(site_cache) == "site:dcc:history:default"
    assert history.maybe_sample(site_cache) is True
    assert history.maybe_sample(site_cache) is False  # this process: throttled locally
    history.reset()  # another process: the ticket in Redis says no
    assert history.maybe_sample(site_cache) is False
    with redis_server.client() as raw:
        assert raw.llen("site:dcc:history:default") == 1
        (stored,) = raw.lrange("site:dcc:history:default", 0, -1)
        sample = json.loads(stored)
        assert sample["hits"] == 1 and sample["misses"] == 1 and sample["sets"] == 1
        assert abs(sample["t"] - time.time()) < 5
        ttl = raw.pttl("site:dcc:history:default")
        assert 3600_000 < ttl <= 7200_000  # expires when nobody samples any more
        assert 0 < raw.pttl("site:dcc:history:default:ticket") <= 60_000

    settings.CACHE_STATS_HISTORY_INTERVAL = 0.2
    history.reset()
    time.sleep(0.25)  # the ticket of the first sample was for 60 s: still there
    assert history.maybe_sample(site_cache) is False
    with redis_server.client() as raw:
        raw.delete("site:dcc:history:default:ticket")
    history.reset()
    assert history.maybe_sample(site_cache) is True
    time.sleep(0.25)
    assert history.maybe_sample(site_cache) is True  # a new interval, a new sample
    assert len(history.samples(site_cache)) == 3


def test_list_is_capped(site_cache: Any, redis_server: RedisServer, settings: Any) -> None:
    now = time.time()
    for minute in range(70, 0, -1):
        assert history.append(site_cache, history.Sample(now - minute * 60, hits=70 - minute))
    with redis_server.client() as raw:
        assert raw.llen("site:dcc:history:default") == 60
    stored = history.samples(site_cache)
    assert len(stored) == 59  # the oldest kept one is 60 minutes old: outside the hour
    assert [s.t for s in stored] == sorted(s.t for s in stored)
    settings.CACHE_STATS_HISTORY_SIZE = 5
    history.append(site_cache, history.Sample(now))
    with redis_server.client() as raw:
        assert raw.llen("site:dcc:history:default") == 5


def test_disabled_with_interval_zero(site_cache: Any, settings: Any) -> None:
    settings.CACHE_STATS_HISTORY_INTERVAL = 0
    assert history.maybe_sample(site_cache) is False
    history.on_flush()
    assert history.samples(site_cache) == []


def test_foreign_entries_are_ignored(site_cache: Any, redis_server: RedisServer) -> None:
    history.append(site_cache, history.Sample(time.time() - 60, hits=1))
    with redis_server.client() as raw:
        raw.lpush("site:dcc:history:default", b"not json", b'{"t": "x"}', b"[]")
    assert [s.hits for s in history.samples(site_cache)] == [1]


def test_points_between_samples() -> None:
    samples = [
        history.Sample(0, hits=0, misses=0, sets=0),
        history.Sample(60, hits=90, misses=10, sets=20, deletes=0, errors=1),
        history.Sample(120, hits=90, misses=10, sets=50, errors=1),  # writes only: no hit rate
        history.Sample(180, hits=5, misses=0, sets=0),  # counters reset: left out
        history.Sample(300, hits=15, misses=10, sets=0),
    ]
    points = history.points(samples)
    assert [(p.start, p.end) for p in points] == [(0, 60), (60, 120), (180, 300)]
    assert points[0].hit_rate == 0.9
    assert points[0].ops_per_minute == 120
    assert points[0].errors == 1
    assert points[1].hit_rate is None
    assert points[1].ops_per_minute == 30
    assert points[2].hit_rate == 0.5
    assert points[2].ops_per_minute == 10  # 20 reads in two minutes


def test_chart_geometry() -> None:
    now = 100_000.0
    points = [
        history.Point(now - 3000, now - 2940, 0.5, 100, 0),
        history.Point(now - 2940, now - 2880, None, 40, 0),
        history.Point(now - 120, now - 60, 1.0, 250, 0),
    ]
    drawn = chart(points, now)
    assert drawn is not None
    assert len(drawn.bars) == 3
    for bar in drawn.bars:
        assert drawn.left <= bar.x and bar.x + bar.width <= drawn.right + 1
        assert drawn.top - 0.1 <= bar.y and bar.y + bar.height <= drawn.bottom + 0.1
    # the ops axis goes up to a round number above the busiest minute
    assert [label for _, label in drawn.ops_ticks] == ["0", "250", "500"]
    assert drawn.bars[2].height == pytest.approx((drawn.bottom - drawn.top) / 2, abs=0.1)
    # the hit rate line breaks where nothing was read
    assert len(drawn.lines) == 2
    assert len(drawn.dots) == 2
    assert drawn.dots[1][1] == drawn.top  # 100 %
    assert "250 operations/min, hit rate 100.0 %" in drawn.bars[2].title
    assert chart([], now) is None


def test_flusher_hook_samples_every_alias(
    site_cache: Any, redis_server: RedisServer, settings: Any
) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "second": {**single_entry(redis_server), "KEY_PREFIX": "second"},
        "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    assert history.on_flush in registry._hooks  # connected by AppConfig.ready()
    site_cache.get("x")
    registry.tick()  # what the flusher thread does every CACHE_STATS_FLUSH_INTERVAL
    with redis_server.client() as raw:
        assert raw.llen("site:dcc:history:default") == 1
        assert raw.llen("second:dcc:history:second") == 1
        # the flush happened first: the sample holds the miss
        assert json.loads(raw.lindex("site:dcc:history:default", 0))["misses"] >= 1


def test_a_failing_hook_does_not_stop_the_flusher(
    site_cache: Any, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def broken() -> None:
        calls.append("broken")
        raise RuntimeError("boom")

    registry.add_hook(broken)
    try:
        registry.tick()
        registry.tick()
    finally:
        registry._hooks.remove(broken)
    assert calls == ["broken", "broken"]
    assert "boom" in caplog.text


def test_history_with_the_server_stopped(own_redis_server: RedisServer, settings: Any) -> None:
    settings.CACHES = {"default": single_entry(own_redis_server, RETRY_DELAY=0.005)}
    cache = caches["default"]
    history.append(cache, history.Sample(time.time(), hits=1))
    own_redis_server.stop()
    assert history.maybe_sample(cache) is False
    assert history.append(cache, history.Sample(time.time())) is False
    assert history.samples(cache) == []
    history.on_flush()  # nothing raises


@pytest.mark.slow
def test_sampling_on_every_mode(target: Target) -> None:
    fresh(target.cache)
    target.cache.get("missing")
    assert history.maybe_sample(target.cache) is True
    (sample,) = history.samples(target.cache)
    assert sample.misses >= 1
