"""A reply lost after Redis ran a command never makes the command run twice.

A loopback proxy forwards the command to a real server (single, and every node of a
real Cluster that announces the proxies' ports), then drops the reply and cuts the
connection. Before the fix redis-py resent the command on its retry: counters were
applied twice. Now every non-idempotent operation of the package either raises
``CacheUnavailable`` (counters) or reports that Redis was unavailable, and the
server shows the effect exactly once; idempotent reads are still retried.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.core.cache import caches

from django_creator_cache.backend.ops import indexing
from django_creator_cache.exceptions import CacheUnavailable
from django_creator_cache.managers import DailyPayout, managers
from django_creator_cache.ratelimit.core import Limiter
from tests.slow_proxy import SlowProxy

BACKEND = "django_creator_cache.backend.RedisCache"


class Cut:
    """The cache on a proxied topology, and a way to cut the next reply of any node."""

    def __init__(self, mode: str, cache: Any, proxies: list[SlowProxy]) -> None:
        self.mode = mode
        self.cache = cache
        self.proxies = proxies
        self.happened = False

    def next_reply(self, action: Callable[[], Any], when: bytes) -> Any:
        """Run ``action``; the reply to its first request containing ``when`` is cut
        (the command still runs on the server); ``happened`` says whether one was cut."""
        for proxy in self.proxies:
            proxy.cut_when = when
        try:
            return action()
        finally:
            self.happened = any(proxy.cut_when is None for proxy in self.proxies)
            for proxy in self.proxies:
                proxy.cut_when = None

    async def anext_reply(self, action: Callable[[], Any], when: bytes) -> Any:
        for proxy in self.proxies:
            proxy.cut_when = when
        try:
            return await action()
        finally:
            for proxy in self.proxies:
                proxy.cut_when = None


@pytest.fixture
def pool_kwargs() -> dict[str, Any]:
    """redis-py connection options of the cache under test (a test may parametrize them)."""
    return {}


@pytest.fixture(params=["single", "cluster"])
def cut(
    request: pytest.FixtureRequest,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    pool_kwargs: dict[str, Any],
) -> Iterator[Cut]:
    # One tracked write in 16 also sweeps its index (a script, not a transaction): none
    # here, so that what a test cuts is what every run sends.
    monkeypatch.setattr(indexing, "sweep_rank", lambda: -1.0)
    options: dict[str, Any] = {"RETRY_ATTEMPTS": 3, "CIRCUIT_FAILURES": 100}
    if pool_kwargs:  # redis-py's connection options, for a Cluster's nodes too
        name = "CONNECTION_POOL_KWARGS" if request.param == "single" else "CLUSTER_KWARGS"
        options[name] = pool_kwargs
    if request.param == "single":
        server, proxy = request.getfixturevalue("proxied_server")
        entry = {"BACKEND": BACKEND, "LOCATION": proxy.url, "OPTIONS": options}
        server.client().flushdb()
        proxies = [proxy]
    else:
        cluster = request.getfixturevalue("proxied_cluster")
        proxies = cluster.proxies
        location = ",".join(f"redis://127.0.0.1:{p.port}" for p in proxies)
        entry = {
            "BACKEND": BACKEND,
            "LOCATION": location,
            "OPTIONS": {"MODE": "cluster", **options},
        }
        for node in cluster.primaries():
            node.client().flushdb()
    settings.CACHES = {"default": entry}
    yield Cut(request.param, caches["default"], proxies)


def test_idempotent_read_is_retried(cut: Cut) -> None:
    cut.cache.set("r", "value")
    assert cut.next_reply(lambda: cut.cache.get("r"), b"GET") == "value"  # sent again, answered


@pytest.mark.parametrize("ignore_key_check", [False, True])
def test_incr_is_never_applied_twice(cut: Cut, ignore_key_check: bool) -> None:
    cache = cut.cache
    cache.set("n", 9)
    cache.incr("n")  # the server has the script: the cut hits the increment itself
    with pytest.raises(CacheUnavailable):
        cut.next_reply(
            lambda: cache.incr("n", 5, ignore_key_check=ignore_key_check),
            b"INCRBY" if ignore_key_check else b"EVALSHA",
        )
    assert cache.get("n") == 15  # ran once: not 20


def test_decr_is_never_applied_twice(cut: Cut) -> None:
    cut.cache.set("n", 11)
    cut.cache.decr("n")
    with pytest.raises(CacheUnavailable):
        cut.next_reply(lambda: cut.cache.decr("n", 3), b"EVALSHA")
    assert cut.cache.get("n") == 7


def test_async_incr_is_never_applied_twice(cut: Cut) -> None:
    cache = cut.cache
    cache.set("n", 0)

    async def cut_inside() -> None:
        await cache.aincr("n")  # this loop's pool holds a live connection
        with pytest.raises(CacheUnavailable):
            await cut.anext_reply(lambda: cache.aincr("n", 1), b"EVALSHA")

    asyncio.run(cut_inside())
    assert cache.get("n") == 2


@pytest.mark.parametrize("pool_kwargs", [{"health_check_interval": 0.05}], ids=["health-checks"])
def test_a_health_check_before_a_counter_leaves_it_unresent(
    cut: Cut, pool_kwargs: dict[str, Any]
) -> None:
    """redis-py PINGs a connection idle past its health-check interval before the next
    command: that PING (safe to resend) must not hide the command after it."""
    cache = cut.cache
    cache.set("n", 9)
    cache.incr("n")
    time.sleep(0.1)
    with pytest.raises(CacheUnavailable):
        cut.next_reply(lambda: cache.incr("n", 5), b"EVALSHA")
    assert cache.get("n") == 15  # ran once: not 20

    async def cut_inside() -> None:
        await cache.aincr("n")
        await asyncio.sleep(0.1)
        with pytest.raises(CacheUnavailable):
            await cut.anext_reply(lambda: cache.aincr("n", 1), b"EVALSHA")

    asyncio.run(cut_inside())
    assert cache.get("n") == 17  # ran once: not 18


def test_set_nx_is_not_resent(cut: Cut) -> None:
    cut.cache.get("a")
    # The SET NX ran; resent, it would answer "not stored". Not resent: add reports failure.
    assert cut.next_reply(lambda: cut.cache.add("a", "first"), b"NX") is False
    assert cut.cache.get("a") == "first"


def test_a_tracked_write_whose_reply_is_lost_stays_invalidatable(cut: Cut) -> None:
    """An entry and its index membership go as one MULTI/EXEC of commands that may run
    twice: resent (on a Cluster as the equivalent script), answered. The entry is in its
    index exactly once."""
    cache = cut.cache
    cache.set("w:0", 0)
    cache.set("w:1", "old")  # warm: connections, the slot's records
    assert cut.next_reply(lambda: cache.set("w:1", "v"), b"MULTI") is True
    assert cut.happened
    assert cache.get("w:1") == "v"
    assert cache.invalidate_prefix("w") == 2
    assert cache.get("w:1") is None and cache.get("w:0") is None


def test_a_tracked_batch_whose_reply_is_lost_is_written_once_and_invalidatable(
    cut: Cut,
) -> None:
    """``set_many``: on a Cluster the transactions a cut connection left unanswered are
    sent again as their scripts, through redis-py: the batch is stored. One server's
    batch is one write script, not resent: the batch reports failure. Either way every
    entry is stored and indexed once, and one invalidation takes them all."""
    cache = cut.cache
    batch = {f"b:{n}": n for n in range(40)}
    cache.set_many(batch)  # warm: connections, the slots' records
    fresh = {key: value + 100 for key, value in batch.items()}
    when = b"MULTI" if cut.mode == "cluster" else b"EVALSHA"
    failed = cut.next_reply(lambda: cache.set_many(fresh), when)
    assert cut.happened
    assert failed == ([] if cut.mode == "cluster" else list(fresh))
    assert cache.get_many(list(fresh)) == fresh
    assert cache.invalidate_prefix("b") == len(fresh)
    assert cache.get_many(list(fresh)) == {}


def test_invalidation_reports_a_lost_reply(cut: Cut) -> None:
    cache = cut.cache
    cache.set("t:1", "v", tags=["grp"])
    cache.invalidate_tags("other")  # warm the connections the script uses
    with pytest.raises(CacheUnavailable):
        cut.next_reply(lambda: cache.invalidate_tags("grp"), b"EVALSHA")


def test_view_tracking_add_is_never_applied_twice(cut: Cut) -> None:
    views = managers("default").view_tracking
    views.add(1, 2, views=10)
    cut.next_reply(lambda: views.add(1, 2, views=10), b"EVALSHA")  # fails open: never counted twice
    stats = views.get(1, 2)
    assert stats is not None and stats.views == 20


def test_rate_limit_hit_is_never_counted_twice(cut: Cut) -> None:
    limiter = Limiter("cut", "10/m")
    assert limiter.hit("u").used == 1
    usage = cut.next_reply(lambda: limiter.hit("u"), b"EVALSHA")
    assert usage.unavailable  # said so, instead of a guessed count
    assert limiter.peek("u").used == 2  # the lost hit counted once, not twice


def test_payout_mark_processed_is_never_applied_twice(cut: Cut) -> None:
    payouts = managers("default").payouts
    day = datetime.date(2024, 1, 15)
    payouts.set(DailyPayout(day, Decimal("1.00"), 0, 5, None))
    payouts.mark_processed(day, 1)  # the server has the script: the cut hits the update
    with pytest.raises(CacheUnavailable):
        cut.next_reply(lambda: payouts.mark_processed(day, 2), b"EVALSHA")
    got = payouts.get(day)
    assert got is not None and (got.processed_count, got.pending_count) == (3, 2)


def _bookkeeping_lives(cache: Any) -> dict[bytes, int]:
    """Every key of the package's own (index shards, slot records) with its PTTL."""
    head = cache.internal_key("").encode()
    client = cache.get_client()
    servers = (
        [client.get_redis_connection(node) for node in client.get_primaries()]
        if cache.cluster
        else [client]
    )
    return {
        key: server.pttl(key)
        for server in servers
        for key in server.scan_iter(match=head + b"*", count=1000)
    }


def test_a_write_resent_after_a_flush_behind_its_back_still_heals(cut: Cut) -> None:
    """The index shards (and a Cluster's slot records) are flushed behind the writer's
    back; its next write's reply is cut and the write is sent again (on a Cluster a
    ``set_many`` too; one server's is a write script, not resent). The resent write finds
    the shard its first run made, yet heals as for a new one: every shard gets an
    expiry, the records are written again, one invalidation takes every entry."""
    cache = cut.cache
    batch = {f"h:{n}": n for n in range(40)}
    fresh = {key: value + 100 for key, value in batch.items()}
    for many in [False, True] if cache.cluster else [False]:
        cache.set_many(batch)  # this process now believes the shards and records there
        cache.set("h:one", 1)
        cache.get_client().flushdb(**({"target_nodes": "primaries"} if cache.cluster else {}))
        if many:
            assert cut.next_reply(lambda: cache.set_many(fresh), b"MULTI") == []
        else:
            assert cut.next_reply(lambda: cache.set("h:one", 2), b"MULTI") is True
        assert cut.happened
        lives = _bookkeeping_lives(cache)
        assert lives and all(life > 0 for life in lives.values()), lives
        written = list(fresh) if many else ["h:one"]
        assert cache.invalidate_prefix("h") == len(written)
        assert cache.get_many(written) == {}


def test_an_index_member_named_like_an_option_is_resent(cut: Cut) -> None:
    """``ZADD shard 0 "" 0 get``: "get" is a member, not an option; the write is as safe
    to resend as any other (it was judged unsafe, and the write reported failure)."""
    cache = cut.cache
    cache.set("w:warm", 0)
    assert cut.next_reply(lambda: cache.set("w:get", "v"), b"MULTI") is True
    assert cut.happened
    if cut.mode == "cluster":
        batch = {"b:nx": 1, **{f"b:{n}": n for n in range(20)}}
        assert cut.next_reply(lambda: cache.set_many(batch), b"MULTI") == []
        assert cut.happened
        assert cache.get_many(list(batch)) == batch
    assert cache.get("w:get") == "v"
    assert cache.invalidate_prefix("w") == 2


def test_resend_judgement_of_set_and_zadd_reads_options_not_values() -> None:
    """A SET's options follow its value; a ZADD's sit between its key and first score:
    values and members that read like options are neither."""
    from django_creator_cache.backend.resend import is_safe

    assert is_safe(("SET", "k", "nx"))
    assert is_safe(("SET", "k", "v", "PX", 100))
    assert not is_safe(("SET", "k", "v", "PX", 100, "NX"))
    assert not is_safe(("SET", "k", "v", b"xx"))
    assert not is_safe(("SET", "k", "v", "GET"))
    assert is_safe(("ZADD", "i", 0, "", 0, "get"))
    assert is_safe(("ZADD", "i", "GT", "CH", 0, "incr", 0, "nx"))
    assert not is_safe(("ZADD", "i", "NX", 0, "m"))
    assert not is_safe(("ZADD", "i", b"xx", 0, "m"))
    assert not is_safe(("ZADD", "i", "INCR", 1, "m"))
    assert not is_safe(("zadd", "i", "nx", 0, "m"))
