"""Invalidation has no holes: under concurrent writers, across a cut reply, and without
stalling Redis for other clients. On a single server and a Cluster, with real processes.

* Writer processes ``set`` and ``set_many`` (200 entries a call) under a prefix while
  an invalidator process loops ``invalidate_prefix`` on it; once the writers stop, one
  last invalidation must leave no entry at all (an entry written between its index
  membership and its value, or indexed where the invalidation does not look, would stay).
* The reply to a drain script is cut after Redis ran it: the call raises, and a retry
  deletes every entry left (the batch that ran took its members with it).
* While a prefix of 500,000 entries is invalidated, another client's ``PING`` waits
  under about 20 ms (99th percentile; the worst is bounded more loosely, as a shared
  2-core machine's scheduler alone can delay one), and Redis's own latency monitor never
  sees its event loop held ``MAX_STALL_MS``: the drain works in bounded steps.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import caches

from django_creator_cache.backend import indexes
from django_creator_cache.exceptions import CacheUnavailable
from tests.conftest import cluster_entry, flush, single_entry
from tests.processes import CONTEXT, process
from tests.test_resend_safety import Cut, cut, pool_kwargs  # noqa: F401  (the cut-reply fixture)

WRITERS = 2
RACE_SECONDS = 3.0
BIG = 500_000
FILL_BATCH = 100_000
MAX_PING_MS = 20.0
MAX_STALL_MS = 150.0
BASELINE_SECONDS = 2.0
DRAIN_LIKE = 250  # keys per baseline read: what one drain script takes


@pytest.fixture(params=["single", "cluster"])
def servers(request: pytest.FixtureRequest, settings: Any) -> Iterator[Any]:
    single = request.param == "single"
    servers = request.getfixturevalue("redis_server" if single else "redis_cluster")
    settings.CACHES = {"default": single_entry(servers) if single else cluster_entry(servers)}
    flush(caches["default"])
    yield servers
    flush(caches["default"])


def remaining(cache: Any, prefix: str) -> list[bytes]:
    """The entries under ``prefix`` still in Redis (SCAN of every primary)."""
    client = cache.get_client()
    return list(client.scan_iter(match=cache.make_pattern(f"{prefix}:*"), count=5000))


# -- writers against an invalidator ------------------------------------------------------------


def _writer(number: int, started: Any, stop: Any, counts: Any) -> None:
    cache = caches["default"]
    written = 0
    while not stop.is_set():
        cache.set(f"race:w{number}:one:{written}", written, 300)
        batch = {f"race:w{number}:many{written}:{i}": i for i in range(200)}
        assert cache.set_many(batch, 300) == []
        if written == 0:
            started.put(number)
        written += 1
    counts.put(written)


def _invalidator(started: Any, stop: Any, counts: Any) -> None:
    cache = caches["default"]
    rounds = 0
    while not stop.is_set():
        cache.invalidate_prefix("race")
        if rounds == 0:
            started.put("invalidator")
        rounds += 1
    counts.put(rounds)


def test_no_write_escapes_a_concurrent_invalidation(servers: Any) -> None:
    cache = caches["default"]
    stop, writers_stop = CONTEXT.Event(), CONTEXT.Event()
    started, counts = CONTEXT.Queue(), CONTEXT.Queue()
    writers = [process(_writer, n, started, writers_stop, counts) for n in range(WRITERS)]
    invalidator = process(_invalidator, started, stop, counts)
    for each in [*writers, invalidator]:
        each.start()
    try:
        for _ in range(WRITERS + 1):  # every process at work before the clock starts
            started.get(timeout=60)
        time.sleep(RACE_SECONDS)
        writers_stop.set()
        for writer in writers:
            writer.join(60)
        stop.set()
        invalidator.join(60)
    finally:
        writers_stop.set()
        stop.set()
        for each in [*writers, invalidator]:
            if each.is_alive():
                each.kill()
                each.join(5)
    assert [each.exitcode for each in [*writers, invalidator]] == [0] * (WRITERS + 1)
    done = [counts.get(timeout=5) for _ in range(WRITERS + 1)]
    assert all(n > 0 for n in done), done  # every process did work concurrently
    cache.invalidate_prefix("race")
    assert remaining(cache, "race") == []


# -- a cut reply -------------------------------------------------------------------------------


def test_a_cut_drain_reply_raises_and_a_retry_deletes_the_rest(cut: Cut) -> None:  # noqa: F811
    cache = cut.cache
    cache.set_many({f"warm:{i}": i for i in range(100)})  # on every node of a Cluster:
    assert cache.invalidate_prefix("warm") == 100  # scripts loaded, connections open
    entries = {f"cut:{i}": i for i in range(2000)}
    assert cache.set_many(entries, 300) == []
    with pytest.raises(CacheUnavailable):
        cut.next_reply(lambda: cache.invalidate_prefix("cut"), b"EVALSHA")
    left = len(remaining(cache, "cut"))
    if cut.mode == "single":
        assert left == 2000 - indexes.DRAIN_BATCH  # the batch that ran took its members
    assert left < 2000
    # Every entry left is still indexed: the retry deletes them all.
    assert cache.invalidate_prefix("cut") == left
    assert remaining(cache, "cut") == []


# -- other clients keep being served -----------------------------------------------------------


def _pinger(addresses: list[tuple[str, int]], phase: Any, stop: Any, out: Any) -> None:
    """PING every primary in turn and note each wait: until ``phase`` is set (the
    baseline), then until ``stop`` (the invalidation)."""
    clients = [redis.Redis(host=host, port=port, socket_timeout=5) for host, port in addresses]

    def waits_until(done: Any) -> list[float]:
        waits = []
        while not done():
            for client in clients:
                started = time.perf_counter()
                client.ping()
                waits.append((time.perf_counter() - started) * 1000)
            time.sleep(0.001)
        return sorted(waits)

    for client in clients:
        client.ping()
    out.put("ready")
    out.put(waits_until(phase.is_set))
    out.put(waits_until(stop.is_set))


def test_invalidating_a_huge_prefix_does_not_stall_other_clients(servers: Any) -> None:
    cache = caches["default"]
    for start in range(0, BIG, FILL_BATCH):
        batch = {f"big:{i}": 0 for i in range(start, start + FILL_BATCH)}
        assert cache.set_many(batch, 600) == []
    cache.set("big", "the root itself stays")
    if cache.cluster:
        addresses = [(node.host, node.port) for node in servers.primaries()]
    else:
        addresses = [(servers.host, servers.port)]
    monitors = [redis.Redis(host=host, port=port) for host, port in addresses]
    phase, stop, out = CONTEXT.Event(), CONTEXT.Event(), CONTEXT.Queue()
    pinger = process(_pinger, addresses, phase, stop, out)
    pinger.start()
    reads = [f"big:{i}" for i in range(0, BIG, BIG // DRAIN_LIKE)]
    try:
        try:
            assert out.get(timeout=60) == "ready"
            # The baseline: as busy a client, sending harmless reads of as many keys per
            # call as a drain takes, for as long: the machine's own noise under this load.
            until = time.monotonic() + BASELINE_SECONDS
            while time.monotonic() < until:
                cache.get_many(reads)
            phase.set()
            busy = out.get(timeout=30)
            for monitor in monitors:  # Redis's own record of a blocked event loop
                monitor.config_set("latency-monitor-threshold", int(MAX_STALL_MS))
                monitor.config_set("slowlog-log-slower-than", int(MAX_PING_MS * 1000))
                monitor.execute_command("LATENCY", "RESET")
                monitor.slowlog_reset()
            assert cache.invalidate_prefix("big") == BIG
            blocked = [monitor.execute_command("LATENCY", "LATEST") for monitor in monitors]
            slow = [
                [(e["duration"], e["command"][:80]) for e in monitor.slowlog_get(5)]
                for monitor in monitors
            ]
            stop.set()
            waits = out.get(timeout=30)
        except queue.Empty:
            raise AssertionError("the pinger did not report") from None
    finally:
        for monitor in monitors:
            monitor.config_set("latency-monitor-threshold", 0)
            monitor.config_set("slowlog-log-slower-than", 10000)
            monitor.close()
        phase.set()
        stop.set()
        pinger.join(30)
        if pinger.is_alive():
            pinger.kill()
            pinger.join(5)
    assert remaining(cache, "big") == []
    assert cache.get("big") == "the root itself stays"
    assert len(waits) > 100
    # What the other client saw. On a quiet machine every PING stays under ~20 ms (worst
    # 9-15 ms, p99 3-5 ms when measured); on 2 cores shared with other work the scheduler
    # alone delays some (a CI run saw p99 20.2 ms with nothing in the 20 ms slowlog: the
    # nodes were preempted, not blocked). So: the 99th percentile under ~20 ms plus what
    # the machine's own noise added to the harmless baseline's, the worst under
    # MAX_STALL_MS, and Redis's own latency monitor never saw its event loop held that
    # long (the old single take-and-delete script held it ~750 ms).
    p99, busy_p99 = waits[len(waits) * 99 // 100], busy[len(busy) * 99 // 100]
    seen = (
        f"PING waits: worst {waits[-1]:.1f} ms, p99 {p99:.1f} ms; during as busy harmless "
        f"reads: worst {busy[-1]:.1f} ms, p99 {busy_p99:.1f} ms; slowlog {slow}"
    )
    assert blocked == [[] for _ in monitors], (blocked, seen)
    assert p99 < MAX_PING_MS + busy_p99, seen
    assert waits[-1] < max(MAX_STALL_MS, 2 * busy[-1]), seen
