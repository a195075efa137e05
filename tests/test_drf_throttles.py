"""Django REST framework throttles on our limiter (``django_creator_cache.ratelimit.drf``),
with DRF installed, on real redis-servers: exact counts, 429 with ``Retry-After``, anon
versus user identities, the trusted-proxy client address, one EVALSHA per check, DRF's
rate settings read when used, Redis down, and exactness across 4 processes x 4 threads.

Views: tests/testapp/drf_views.py; ``DEFAULT_THROTTLE_CLASSES``: tests/settings.py.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from rest_framework.test import APIRequestFactory, force_authenticate

from django_creator_cache.ratelimit import drf, parse_rate
from django_creator_cache.ratelimit.keys import user_identity
from tests.redis_servers import RedisServer
from tests.testapp import drf_views

BACKEND = "django_creator_cache.backend.RedisCache"
IN_SCRIPT = {"time", "zrange", "zremrangebyscore", "zcard", "zadd", "pexpire", "hmget", "hset"}
factory = APIRequestFactory()


class Member:
    is_authenticated = True

    def __init__(self, pk: int) -> None:
        self.pk = pk


@pytest.fixture
def backend(redis_server: RedisServer, settings: Any) -> Any:
    settings.CACHES = {
        "default": {
            "BACKEND": BACKEND,
            "LOCATION": redis_server.url,
            "KEY_PREFIX": f"drf-{uuid.uuid4().hex[:10]}",
        }
    }
    return caches["default"]


def call(
    view: Callable[..., Any], remote: str = "203.0.113.9", user: Any = None, **meta: str
) -> Any:
    request = factory.get("/", REMOTE_ADDR=remote, **meta)
    if user is not None:
        force_authenticate(request, user=user)
    return view(request)


def statuses(view: Callable[..., Any], n: int, **kwargs: Any) -> list[int]:
    return [call(view, **kwargs).status_code for _ in range(n)]


# -- DEFAULT_THROTTLE_CLASSES ----------------------------------------------------------------


def test_default_classes_anon_exact_then_429_with_retry_after(backend: Any) -> None:
    view = drf_views.Campaigns.as_view()
    assert [type(t) for t in drf_views.Campaigns().get_throttles()] == [
        drf.AnonRateThrottle,
        drf.UserRateThrottle,
    ]
    assert statuses(view, 3) == [200, 200, 200]  # anon: "3/min"
    refused = call(view)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.data["detail"].lower()
    assert call(view, remote="198.51.100.1").status_code == 200  # per client address
    # Sliding window by default: one sorted set per scope and client, under our prefix.
    keys = [k.decode() for k in backend.get_client().keys(f"{backend.key_prefix}:*drf:anon*")]
    assert len(keys) == 2 and all(":rl:sliding_window:drf:anon:3/60:{ip:" in k for k in keys)
    assert {backend.get_client().type(k) for k in keys} == {b"zset"}


def test_through_the_whole_handler(backend: Any, settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.testapp.drf_views"
    client = Client(REMOTE_ADDR="203.0.113.20")
    codes = [client.get("/api/campaigns/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = client.get("/api/campaigns/")
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 60


def test_users_count_per_user_and_anonymous_requests_per_address(backend: Any) -> None:
    view = drf_views.Campaigns.as_view()
    alice, bob = Member(1), Member(2)
    assert statuses(view, 6, user=alice) == [200] * 5 + [429]  # user: "5/hour"
    refused = call(view, user=alice, remote="198.51.100.9")  # per user, whatever the address
    assert refused.status_code == 429 and 60 < int(refused["Retry-After"]) <= 3600
    assert statuses(view, 5, user=bob) == [200] * 5
    # Users were not counted as anonymous: the address still has its 3 anonymous requests.
    assert statuses(view, 4) == [200, 200, 200, 429]


# -- per view --------------------------------------------------------------------------------


def test_per_view_classes_scopes_and_our_rate_strings(backend: Any) -> None:
    uploads, more = drf_views.Uploads.as_view(), drf_views.MoreUploads.as_view()
    assert [call(uploads).status_code, call(more).status_code] == [200, 200]
    assert call(more).status_code == 429  # one scope, one counter: "uploads" 2/m
    assert call(uploads, user=Member(5)).status_code == 200  # a user counts on their own
    assert statuses(drf_views.Unscoped.as_view(), 5) == [200] * 5  # no scope: not limited
    burst = drf_views.Burst.as_view()  # rate "2/m" on the class, a token bucket
    assert statuses(burst, 3, user=Member(9)) == [200, 200, 429]
    refused = call(burst, user=Member(9))
    assert 1 <= int(refused["Retry-After"]) <= 30  # one token back every 30 s
    counted = user_identity(Member(9))
    assert counted == "user:tests.test_drf_throttles.Member:9"  # not the project's user model
    key = drf._limiter("drf:burst", parse_rate("2/m"), "token_bucket", None, None).key(counted)
    assert backend.get_client().type(key) == b"hash"


def test_drf_rate_settings_are_read_when_used(backend: Any, settings: Any) -> None:
    view = drf_views.Campaigns.as_view()
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "1/minute", "user": None},
    }
    assert statuses(view, 2) == [200, 429]
    assert statuses(view, 8, user=Member(3)) == [200] * 8  # None: not limited
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {}}
    with pytest.raises(ImproperlyConfigured, match="'anon' scope"):
        drf.AnonRateThrottle().allow_request(factory.get("/"), drf_views.Campaigns())


def test_one_evalsha_per_check(backend: Any, redis_server: RedisServer) -> None:
    view = drf_views.Uploads.as_view()
    call(view, remote="192.0.2.1")  # connects, loads the script
    before = redis_server.commandstats()
    assert call(view, remote="192.0.2.2").status_code == 200
    after = redis_server.commandstats()
    delta = {n: after[n] - before.get(n, 0) for n in after if after[n] != before.get(n, 0)}
    delta.pop("info", None), delta.pop("hello", None)  # reading INFO
    assert delta.pop("evalsha") == 1, delta
    assert set(delta) <= IN_SCRIPT, delta


# -- the client address ----------------------------------------------------------------------


def test_a_forged_forwarded_for_escapes_drf_but_not_ours(backend: Any) -> None:
    ours, theirs = drf_views.Campaigns.as_view(), drf_views.DRFAnon.as_view()
    forged = [{"HTTP_X_FORWARDED_FOR": f"10.9.8.{n}"} for n in range(6)]
    assert [call(ours, **meta).status_code for meta in forged] == [200] * 3 + [429] * 3
    # DRF's own AnonRateThrottle (NUM_PROXIES unset) takes the header at its word.
    assert [call(theirs, **meta).status_code for meta in forged] == [200] * 6


def test_behind_trusted_proxies_the_forwarded_client_is_counted(
    backend: Any, settings: Any
) -> None:
    settings.RATELIMIT_TRUSTED_PROXIES = ["10.0.0.0/8"]
    view = drf_views.Campaigns.as_view()

    def via_proxy(forwarded: str) -> int:
        return int(call(view, remote="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded).status_code)

    assert [via_proxy("198.51.100.7") for _ in range(3)] == [200] * 3
    # The client prepends a forged hop: the proxy appended the real one, which is counted.
    assert via_proxy("1.2.3.4, 198.51.100.7") == 429
    assert via_proxy("198.51.100.8") == 200  # another client behind the same proxy
    # Straight to the site (not through a trusted proxy), the header is ignored.
    direct = [call(view, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code for n in range(20, 24)]
    assert direct == [200, 200, 200, 429]


# -- Redis unavailable -----------------------------------------------------------------------


def test_redis_down_fails_open_then_closed(own_redis_server: RedisServer, settings: Any) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": BACKEND,
            "LOCATION": own_redis_server.url,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "RETRY_ATTEMPTS": 1, "CIRCUIT_COOLDOWN": 2},
        }
    }
    view = drf_views.Uploads.as_view()
    assert statuses(view, 3) == [200, 200, 429]
    own_redis_server.stop()
    assert statuses(view, 3) == [200] * 3  # fail open (the default)
    assert caches["default"].runtime.counters.ratelimit_failopen == 3
    settings.RATELIMIT_FAIL_OPEN = False
    refused = call(view)
    assert refused.status_code == 429 and refused["Retry-After"] == "2"  # the cool-down


# -- exactness across processes --------------------------------------------------------------

PROCESSES, THREADS, REQUESTS = 4, 4, 15  # 240 requests per view, limit 100
DEADLINE = 60.0


def _worker(entry: dict[str, Any], start: Any, results: Any) -> None:
    """One web process: THREADS threads, each sending REQUESTS requests to both views."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()
    from django.conf import settings

    from tests.testapp import drf_views

    settings.CACHES = {"default": entry}
    anon, user = drf_views.ExactAnon.as_view(), drf_views.ExactUser.as_view()
    caches["default"].get("connect")  # connect before the start line

    def client(_: int) -> Counter[str]:
        seen: Counter[str] = Counter()
        for _ in range(REQUESTS):
            seen[f"anon {call(anon).status_code}"] += 1
            seen[f"user {call(user, user=Member(7), remote='198.51.100.77').status_code}"] += 1
        return seen

    start.wait(DEADLINE)
    with ThreadPoolExecutor(THREADS) as pool:
        total = sum(pool.map(client, range(THREADS)), Counter())
    results.put(dict(total))


def test_exactly_the_limit_passes_across_processes_and_threads(redis_server: RedisServer) -> None:
    entry = {
        "BACKEND": BACKEND,
        "LOCATION": redis_server.url,
        "KEY_PREFIX": f"drf-exact-{uuid.uuid4().hex[:10]}",
    }
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
    assert total == {
        "anon 200": 100,
        "anon 429": sent - 100,
        "user 200": 100,
        "user 429": sent - 100,
    }
