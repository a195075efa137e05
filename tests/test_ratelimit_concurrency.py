"""Exactness under concurrency: 4 OS processes x 8 threads call a limited view at once.

Each check is one Lua script, so however the 320 requests interleave, exactly the limit
passes: on a single Redis and on a Redis Cluster, for every algorithm. Every process adds
its statistics to Redis, so the site-wide counts add up too.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse

from tests.redis_servers import RedisCluster, RedisServer

BACKEND = "django_creator_cache.backend.RedisCache"
PROCESSES = 4
THREADS = 8
REQUESTS = 10  # per thread and view: 320 requests per view
LIMIT = 100
# Sliding: 100 per minute. The fixed window and the token bucket count per day so that
# no window boundary or refill falls inside the few seconds the test runs.
RATES = {"sliding_window": "100/m", "fixed_window": "100/d", "token_bucket": "100/d"}
DEADLINE = 60.0


def _ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def _worker(entry: dict[str, Any], start: Any, results: Any) -> None:
    """One web process: 8 threads, each sending REQUESTS requests to every view."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()
    from django.conf import settings
    from django.test import RequestFactory

    from django_creator_cache.ratelimit import rate_limited

    settings.CACHES = {"default": entry}
    views = {
        algorithm: rate_limited(rate=rate, algorithm=algorithm, group=f"exact-{algorithm}")(_ok)
        for algorithm, rate in RATES.items()
    }
    caches["default"].get("connect")  # connect before the start line, count nothing

    def client(_: int) -> Counter[str]:
        factory = RequestFactory()
        seen: Counter[str] = Counter()
        for _ in range(REQUESTS):
            for algorithm, view in views.items():
                status = view(factory.get("/", REMOTE_ADDR="203.0.113.50")).status_code
                seen[f"{algorithm} {status}"] += 1
        return seen

    start.wait(DEADLINE)
    with ThreadPoolExecutor(THREADS) as pool:
        total = sum(pool.map(client, range(THREADS)), Counter())
    caches["default"].flush_stats()
    results.put(dict(total))


@pytest.mark.parametrize("mode", ["single", "cluster"])
def test_exactly_the_limit_passes_across_processes_and_threads(
    request: pytest.FixtureRequest, settings: Any, mode: str
) -> None:
    prefix = f"exact-{uuid.uuid4().hex[:10]}"
    if mode == "single":
        server: RedisServer = request.getfixturevalue("redis_server")
        entry = {"BACKEND": BACKEND, "LOCATION": server.url, "KEY_PREFIX": prefix}
    else:
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        entry = {
            "BACKEND": BACKEND,
            "LOCATION": cluster.location,
            "KEY_PREFIX": prefix,
            "OPTIONS": {"MODE": "cluster"},
        }
    settings.CACHES = {"default": entry}
    # Counted before: this process's own unflushed counts for the same server.
    before = caches["default"].stats(server=False)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(entry, start, results)) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    try:
        total: Counter[str] = Counter()
        for _ in procs:
            try:
                total.update(results.get(timeout=DEADLINE))
            except queue.Empty:
                raise AssertionError("a worker process did not report in time") from None
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
    assert [proc.exitcode for proc in procs] == [0] * PROCESSES

    sent = PROCESSES * THREADS * REQUESTS
    for algorithm in RATES:
        assert total[f"{algorithm} 200"] == LIMIT, (algorithm, total)
        assert total[f"{algorithm} 429"] == sent - LIMIT, (algorithm, total)

    stats = caches["default"].stats(server=False)
    assert stats["site_wide"] is True
    assert stats["ratelimit_allowed"] - before["ratelimit_allowed"] == LIMIT * len(RATES)
    assert stats["ratelimit_blocked"] - before["ratelimit_blocked"] == (sent - LIMIT) * len(RATES)
