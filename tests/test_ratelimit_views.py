"""Rate limiting on real redis-servers: the algorithms, one round trip per check, the view
decorator (429, headers, block=False, stacking, class-based and async views), and Redis
going away (fail open, fail closed)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis.connection
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.utils.decorators import method_decorator
from django.views import View

from django_creator_cache.exceptions import Ratelimited
from django_creator_cache.ratelimit import ALGORITHMS, Limiter, RatelimitState, hit, rate_limited
from tests.conftest import Target
from tests.redis_servers import RedisServer

BACKEND = "django_creator_cache.backend.RedisCache"
factory = RequestFactory()


@pytest.fixture
def backend(redis_server: RedisServer, settings: Any) -> Any:
    """Our backend on the shared server, under a key prefix of this test's own."""
    settings.CACHES = {
        "default": {
            "BACKEND": BACKEND,
            "LOCATION": redis_server.url,
            "KEY_PREFIX": f"rl-{uuid.uuid4().hex[:10]}",
        }
    }
    return caches["default"]


def get(remote: str = "203.0.113.9", user: Any = None, method: str = "get") -> HttpRequest:
    req: HttpRequest = getattr(factory, method)("/", REMOTE_ADDR=remote)
    if user is not None:
        req.user = user  # type: ignore[attr-defined]
    return req


class Member:
    is_authenticated = True

    def __init__(self, pk: int) -> None:
        self.pk = pk


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


# -- the core ----------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_hit_counts_answers_and_sets_the_ttl_with_the_first_hit(
    backend: Any, algorithm: str
) -> None:
    limiter = Limiter("posts", "3/m", algorithm=algorithm)
    first = limiter.hit("tiktok:42")
    assert (first.allowed, first.limit, first.remaining, first.used) == (True, 3, 2, 1)
    assert 0 < backend.get_client().pttl(limiter.key("tiktok:42")) <= 60_000
    assert [limiter.hit("tiktok:42").remaining for _ in range(2)] == [1, 0]
    refused = limiter.hit("tiktok:42")
    assert not refused.allowed and refused.remaining == 0
    assert 0 < refused.retry_after <= 60 and 0 < refused.reset_seconds <= 60
    assert limiter.peek("tiktok:42").remaining == 0
    assert limiter.hit("tiktok:43").allowed  # another identity, another count
    assert limiter.reset("tiktok:42") is True
    first_peek, second_peek = limiter.peek("tiktok:42"), limiter.peek("tiktok:42")
    assert first_peek.used == second_peek.used == 0  # peek does not count
    assert limiter.peek("tiktok:42").remaining == 3
    # The one-call form counts in the same place.
    assert hit("posts", "tiktok:42", "3/m", algorithm=algorithm).remaining == 2


def test_cost_counts_several_hits_at_once(backend: Any) -> None:
    for algorithm in ALGORITHMS:
        limiter = Limiter("bulk", "10/h", algorithm=algorithm)
        assert limiter.hit("u1", cost=7).remaining == 3
        refused = limiter.hit("u1", cost=4)
        assert not refused.allowed and refused.remaining == 3, algorithm
        assert limiter.hit("u1", cost=3).remaining == 0


def test_identities_that_are_not_plain_text_are_hashed_into_the_hash_tag(backend: Any) -> None:
    limiter = Limiter("g", "1/m")
    key = limiter.key("weird {id} ü")
    assert "{#" in key and "weird" not in key
    assert key.endswith("}") and key.count("{") == 1
    assert limiter.hit("weird {id} ü").allowed and not limiter.hit("weird {id} ü").allowed
    assert limiter.key("ip:2001:db8::/64").endswith(":rl:sliding_window:g:1/60:{ip:2001:db8::/64}")


def test_retry_after_is_honest(backend: Any) -> None:
    limiters = [Limiter("honest", "2/s", algorithm=a) for a in ALGORITHMS]
    for limiter in limiters:
        assert limiter.hit("x").allowed and limiter.hit("x").allowed
    refused = [limiter.hit("x") for limiter in limiters]
    assert not any(usage.allowed for usage in refused)
    time.sleep(max(usage.retry_after for usage in refused) + 0.02)
    assert all(limiter.hit("x").allowed for limiter in limiters)


def test_sliding_window_allows_no_double_burst_across_a_window_boundary(backend: Any) -> None:
    """Hits just before and just after a fixed window's boundary: the fixed window lets
    twice the limit through within a fraction of the period, the sliding window does not."""
    limit = 10
    fixed = Limiter("boundary", f"{limit}/s", algorithm="fixed_window")
    sliding = Limiter("boundary", f"{limit}/s", algorithm="sliding_window")
    to_boundary = fixed.peek("c").reset_seconds
    if to_boundary < 0.25:  # too close to start the first burst before it
        to_boundary += 1
    time.sleep(to_boundary - 0.2)
    started = time.monotonic()
    allowed: Counter[str] = Counter()
    for burst in range(2):
        for _ in range(limit):
            allowed["fixed"] += fixed.hit("c").allowed
            allowed["sliding"] += sliding.hit("c").allowed
        if burst == 0:
            time.sleep(0.25)  # now just past the boundary
    span = time.monotonic() - started
    assert span < 0.8, "the two bursts must fall within one period"
    assert allowed["fixed"] == 2 * limit
    assert allowed["sliding"] == limit


# -- one round trip ------------------------------------------------------------------------------

# What the scripts run inside Redis (counted by INFO commandstats, sent by nobody).
IN_SCRIPT = {"time", "zrange", "zremrangebyscore", "zcard", "zadd", "pexpire", "hmget", "hset"}
# Not ours: reading INFO (HELLO, INFO), and servers talking to each other (replicas ACK,
# sentinels PING, PUBLISH and ask INFO). ``sent`` proves our client wrote one command.
BACKGROUND = {"replconf", "publish", "ping", "info", "hello"}


@pytest.fixture
def commands(
    target: Target, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Callable[[], object]], tuple[dict[str, int], int]]:
    """Measures what an action costs: Redis commands (primaries only) and socket writes."""
    if target.mode == "cluster":
        primaries = request.getfixturevalue("redis_cluster").primaries()

        def stats() -> dict[str, int]:
            total: Counter[str] = Counter()
            for node in primaries:
                total.update(node.commandstats())
            return dict(total)
    else:
        stats = target.commandstats
    sends = [0]
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(conn: Any, command: Any, check_health: bool = True) -> None:
        sends[0] += 1
        original(conn, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)

    def measure(action: Callable[[], object]) -> tuple[dict[str, int], int]:
        before = stats()
        sends[0] = 0
        action()
        sent = sends[0]
        after = stats()
        delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
        return {n: calls for n, calls in delta.items() if calls and n not in BACKGROUND}, sent

    return measure


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_one_command_per_check(
    target: Target,
    commands: Callable[[Callable[[], object]], tuple[dict[str, int], int]],
    algorithm: str,
) -> None:
    limiter = Limiter("one-trip", "100/m", algorithm=algorithm)
    limiter.hit("warm-up")  # connects, loads the script
    for identity in ("new", "new", "new"):  # first hit, later hits
        delta, sent = commands(lambda identity=identity: limiter.hit(identity))
        assert sent == 1, delta
        assert delta.pop("evalsha") == 1, delta
        assert set(delta) <= IN_SCRIPT, delta
        assert "time" in delta  # the clock is Redis's
    assert limiter.peek("new").remaining == 97


def test_a_server_that_lost_its_scripts_is_given_them_again(backend: Any) -> None:
    limiter = Limiter("noscript", "5/m")
    assert limiter.hit("a").remaining == 4
    backend.get_client().script_flush()
    assert limiter.hit("a").remaining == 3
    assert limiter.hit("a").remaining == 2


# -- the decorator -------------------------------------------------------------------------------


def test_refusal_is_429_with_retry_after_and_ratelimit_headers(backend: Any) -> None:
    counters = backend.runtime.counters  # per alias and server, in this process
    before = (counters.ratelimit_allowed, counters.ratelimit_blocked)
    view = rate_limited(rate="2/m")(ok)
    first = view(get())
    assert first.status_code == 200
    assert first["RateLimit-Limit"] == "2" and first["RateLimit-Remaining"] == "1"
    assert first["RateLimit-Reset"] == "60"
    assert view(get())["RateLimit-Remaining"] == "0"
    refused = view(get())
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["RateLimit-Remaining"] == "0" and refused["RateLimit-Limit"] == "2"
    assert view(get("198.51.100.1")).status_code == 200  # per client IP
    assert (counters.ratelimit_allowed, counters.ratelimit_blocked) == (
        before[0] + 3,
        before[1] + 1,
    )


def test_headers_on_allowed_responses_can_be_turned_off(backend: Any, settings: Any) -> None:
    settings.RATELIMIT_HEADERS = False
    view = rate_limited(rate="1/m")(ok)
    allowed = view(get())
    assert allowed.status_code == 200 and not allowed.has_header("RateLimit-Limit")
    refused = view(get())
    assert refused.status_code == 429 and refused.has_header("RateLimit-Remaining")


def test_block_false_runs_the_view_and_tells_it(backend: Any) -> None:
    seen: list[RatelimitState] = []

    @rate_limited(rate="1/m", block=False)
    def view(request: HttpRequest) -> HttpResponse:
        seen.append(request.ratelimit)  # type: ignore[attr-defined]
        return HttpResponse("ran")

    assert view(get()).status_code == 200
    assert view(get()).status_code == 200
    assert [state.limited for state in seen] == [False, True]
    assert seen[1].usage[0].allowed is False and seen[1].usage[0].limit == 1


def test_stacked_limits_are_each_checked_and_any_refusal_refuses(backend: Any) -> None:
    @rate_limited(rate="2/m", key="ip", group="burst")
    @rate_limited(rate="3/h", key="user", group="hourly")
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    alice = Member(1)
    # The per-IP burst refuses the third request from one address.
    first = view(get("203.0.113.1", alice))
    assert first.status_code == 200
    # Headers report the limit closest to refusing: 1 left of the burst, 2 of the hour.
    assert (first["RateLimit-Limit"], first["RateLimit-Remaining"]) == ("2", "1")
    assert view(get("203.0.113.1", alice)).status_code == 200
    assert view(get("203.0.113.1", alice)).status_code == 429
    # From another address the hourly per-user limit (3, one refused hit not counted) refuses.
    assert view(get("203.0.113.2", alice)).status_code == 200
    refused = view(get("203.0.113.3", alice))
    assert refused.status_code == 429 and refused["RateLimit-Limit"] == "3"
    # Anonymous requests are not counted by the per-user limit, only by the burst.
    assert view(get("203.0.113.4", Anonymous())).status_code == 200


class Anonymous:
    is_authenticated = False
    pk = None


def test_methods_group_and_cache_are_honoured(
    backend: Any, settings: Any, redis_server: RedisServer
) -> None:
    posts = rate_limited(rate="1/m", methods=["post"], group="shared")(ok)
    other = rate_limited(rate="1/m", methods="POST", group="shared")(ok)
    assert [posts(get()).status_code for _ in range(3)] == [200, 200, 200]  # GET not counted
    assert posts(get(method="post")).status_code == 200
    assert other(get(method="post")).status_code == 429  # one group, one counter
    # The alias is looked up per request: decorating needs no cache at all.
    elsewhere = rate_limited(rate="1/m", cache="limits")(ok)
    with pytest.raises(Exception, match="limits"):
        elsewhere(get())
    settings.CACHES = {
        **settings.CACHES,
        "limits": {"BACKEND": BACKEND, "LOCATION": redis_server.url, "KEY_PREFIX": "lim2"},
        "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    caches["limits"].clear()
    assert [elsewhere(get()).status_code for _ in range(2)] == [200, 429]
    with pytest.raises(ImproperlyConfigured, match="RATELIMIT_CACHE"):
        rate_limited(rate="1/m", cache="local")(ok)(get())


def test_class_based_views_via_method_decorator(backend: Any) -> None:
    @method_decorator(rate_limited(rate="1/m"), name="dispatch")
    class Campaigns(View):
        def get(self, request: HttpRequest) -> HttpResponse:
            return HttpResponse("campaigns")

    @method_decorator(rate_limited(rate="1/m"), name="dispatch")
    class Payouts(View):
        def get(self, request: HttpRequest) -> HttpResponse:
            return HttpResponse("payouts")

    campaigns, payouts = Campaigns.as_view(), Payouts.as_view()
    assert campaigns(get()).status_code == 200
    assert campaigns(get()).status_code == 429
    # Both inherit View.dispatch, yet each class has its own default group.
    assert payouts(get()).status_code == 200


def test_decorating_a_method_without_method_decorator_is_a_helpful_type_error(
    backend: Any,
) -> None:
    class Bad(View):
        @rate_limited(rate="1/m")
        def get(self, request: HttpRequest) -> HttpResponse:
            return HttpResponse("never")

    with pytest.raises(TypeError, match="method_decorator"):
        Bad.as_view()(get())


def test_async_views(backend: Any) -> None:
    @rate_limited(rate="2/m")
    async def view(request: HttpRequest) -> HttpResponse:
        await asyncio.sleep(0)
        return HttpResponse("async")

    from asgiref.sync import iscoroutinefunction

    assert iscoroutinefunction(view)

    async def three() -> list[HttpResponse]:
        return [await view(get()) for _ in range(3)]

    responses = asyncio.run(three())
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0]["RateLimit-Remaining"] == "1" and responses[2].has_header("Retry-After")


def limited_page(request: HttpRequest, exception: Ratelimited) -> HttpResponse:
    return HttpResponse(f"slow down, {exception.usage.group}", status=429)


def test_ratelimit_view_answers_or_raises(backend: Any, settings: Any) -> None:
    view = rate_limited(rate="1/m", group="custom")(ok)
    view(get())
    settings.RATELIMIT_VIEW = "tests.test_ratelimit_views.limited_page"
    refused = view(get())
    assert refused.content == b"slow down, custom" and refused.has_header("Retry-After")
    settings.RATELIMIT_VIEW = "django_creator_cache.ratelimit.views.raise_ratelimited"
    with pytest.raises(PermissionDenied) as raised:
        view(get())
    assert isinstance(raised.value, Ratelimited) and raised.value.usage.group == "custom"


# -- Redis unavailable ---------------------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True])
def test_fail_open_then_closed_while_redis_is_down(
    own_redis_server: RedisServer, settings: Any, strict: bool
) -> None:
    options = {
        "SOCKET_TIMEOUT": 0.5,
        "SOCKET_CONNECT_TIMEOUT": 0.5,
        "RETRY_ATTEMPTS": 1,
        "RETRY_DELAY": 0.01,
        "CIRCUIT_FAILURES": 3,
        "CIRCUIT_COOLDOWN": 1.0,
        "STRICT": strict,  # a strict alias raises; the rate limit's own policy still decides
    }
    settings.CACHES = {
        "default": {"BACKEND": BACKEND, "LOCATION": own_redis_server.url, "OPTIONS": options}
    }
    outage_backend = caches["default"]
    assert outage_backend.options.strict is strict
    view = rate_limited(rate="1/m")(ok)
    assert [view(get()).status_code for _ in range(2)] == [200, 429]
    own_redis_server.stop()
    counters = outage_backend.runtime.counters
    # Fail open (the default): allowed, counted, no made-up RateLimit headers.
    responses = [view(get()) for _ in range(6)]  # the circuit opens after 3 failures
    assert [r.status_code for r in responses] == [200] * 6
    assert not responses[-1].has_header("RateLimit-Remaining")
    assert counters.ratelimit_failopen == 6
    assert outage_backend.runtime.breaker.state == "open"
    usage = Limiter("core", "1/m").hit("x")
    assert usage.allowed and usage.unavailable
    # Fail closed: 429, retry when the circuit will probe Redis again.
    settings.RATELIMIT_FAIL_OPEN = False
    refused = view(get())
    assert refused.status_code == 429 and refused["Retry-After"] == "1"
    assert counters.ratelimit_failclosed == 1
    # Redis is back (empty): limits count again once the circuit lets a probe through.
    own_redis_server.start()
    time.sleep(1.05)
    assert [view(get()).status_code for _ in range(2)] == [200, 429]
    assert outage_backend.runtime.breaker.state == "closed"
