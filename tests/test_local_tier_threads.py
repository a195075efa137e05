"""The local tier's hit path under threads: no lock serialises the hits, and coherence holds.

Reader processes each run several threads on one shared backend, reading a few keys in
a loop from their local tier, while another process rewrites the keys, then deletes them. What
must hold, per thread: never a value older than one it already read; never a value
older than the newest write that had returned before the read started, past the
tier's ``MAX_STALENESS`` (the documented bound; in practice the delay is one
invalidation message); after the writer stopped, every thread reads the last write.
And the threads were served by the tier (local hits), with the tier's lock untouched
by plain hits (counted by wrapping it).
"""

from __future__ import annotations

import bisect
import multiprocessing
import os
import threading
import time
from typing import Any

from django_creator_cache.backend import RedisCache, local_tier
from tests.redis_servers import RedisServer

BOUND = 0.5  # MAX_STALENESS
READERS = 2
THREADS = 4
WRITES = 30
KEYS = ["t0", "t1", "t2"]
DELETED = -2  # what a read of a deleted key records


class CountingLock:
    """The tier's lock, counting how often it is taken (by anyone)."""

    def __init__(self, lock: Any) -> None:
        self._lock = lock
        self.taken = 0

    def __enter__(self) -> Any:
        self.taken += 1
        return self._lock.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._lock.__exit__(*exc)

    def acquire(self, *args: Any) -> Any:
        self.taken += 1
        return self._lock.acquire(*args)

    def release(self) -> None:
        self._lock.release()


def _reader(location: str, go: Any, stop: Any, out: Any) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()
    from django_creator_cache.backend import RedisCache

    options = {"ALIAS": "threads", "LOCAL_TIER": {"MAX_STALENESS": BOUND}}
    cache = RedisCache(location, {"OPTIONS": options})
    for key in KEYS:
        cache.get(key)
    tier = cache.local_tier
    assert tier is not None and tier.wait_serving(10)
    out.put(("ready", os.getpid()))
    go.wait(30)
    reads: list[list[tuple[float, int, int]]] = [[] for _ in range(THREADS)]

    def read(mine: list[tuple[float, int, int]]) -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and (start := time.monotonic()) < deadline:
            for index, key in enumerate(KEYS):
                value = cache.get(key)
                mine.append((start, index, DELETED if value is None else value[0]))

    threads = [threading.Thread(target=read, args=(mine,)) for mine in reads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(("done", reads, cache.runtime.counters.local_hits))


def test_threads_hit_without_the_lock(redis_server: RedisServer) -> None:
    """Plain hits from several threads never take the tier's lock."""
    options = {"ALIAS": "lockless", "LOCAL_TIER": {"MAX_STALENESS": BOUND}}
    cache = RedisCache(redis_server.url, {"OPTIONS": options})
    try:
        cache.set("k", "v", 60)
        assert cache.get("k") == "v"
        tier = cache.local_tier
        assert tier is not None and tier.wait_serving(10)
        assert cache.get("k") == "v"
        counting = CountingLock(tier._lock)
        tier._lock = counting  # type: ignore[assignment]
        hits_before = cache.runtime.counters.local_hits
        results: list[Any] = []

        def hit() -> None:
            results.extend(cache.get("k") for _ in range(500))

        threads = [threading.Thread(target=hit) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == ["v"] * 4000
        assert cache.runtime.counters.local_hits - hits_before == 4000
        # Only the tracking thread's own rounds (a heartbeat every MAX_STALENESS / 4) take it.
        assert counting.taken < 100
    finally:
        local_tier.shutdown_all()


def test_threads_stay_coherent_while_another_process_writes(redis_server: RedisServer) -> None:
    location = redis_server.url
    writer = RedisCache(location, {"OPTIONS": {"ALIAS": "writer"}})
    for key in KEYS:
        writer.set(key, (0, "x" * 50))
    ctx = multiprocessing.get_context("spawn")
    go, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_reader, args=(location, go, stop, out)) for _ in range(READERS)]
    for proc in procs:
        proc.start()
    # Per key: (returned at, version) of every write; the closing delete is version DELETED.
    returned: list[list[tuple[float, int]]] = [[(0.0, 0)] for _ in KEYS]
    try:
        for _ in procs:
            assert out.get(timeout=60)[0] == "ready"
        go.set()
        time.sleep(0.2)
        for version in range(1, WRITES + 1):
            for index, key in enumerate(KEYS):
                writer.set(key, (version, "x" * 50))
                returned[index].append((time.monotonic(), version))
            time.sleep(0.03)
        for index, key in enumerate(KEYS):  # the last write of every key: a delete
            writer.delete(key)
            returned[index].append((time.monotonic(), DELETED))
        time.sleep(BOUND + 0.5)  # every thread must have seen the last write by then
        stop.set()
        reports = [out.get(timeout=60) for _ in procs]
    finally:
        for proc in procs:
            proc.join(20)
            if proc.is_alive():
                proc.kill()
    assert [proc.exitcode for proc in procs] == [0] * READERS

    worst = 0.0
    late = 0
    total = 0
    for kind, per_thread, local_hits in reports:
        assert kind == "done"
        assert local_hits > sum(len(reads) for reads in per_thread) // 2, "not read from the tier"
        for reads in per_thread:
            assert reads, "a thread read nothing"
            seen = [0] * len(KEYS)  # index into returned[key] of the newest write seen
            for start, index, version in reads:
                total += 1
                writes = returned[index]
                newest = bisect.bisect_right([t for t, _ in writes], start) - 1
                # The write this read shows (each version is written once), not before the
                # one this thread already saw.
                position = next(
                    (p for p in range(seen[index], len(writes)) if writes[p][1] == version),
                    None,
                )
                assert position is not None, f"key {index}: read {version} went back in time"
                seen[index] = position
                if position < newest:
                    late += 1
                    stale_for = start - writes[position + 1][0]
                    worst = max(worst, stale_for)
                    assert stale_for <= BOUND, f"read version {version} {stale_for:.3f}s late"
            assert [returned[i][seen[i]][1] for i in range(len(KEYS))] == [
                writes[-1][1] for writes in returned
            ]  # every thread saw the last write of every key
    print(f"threads: {total} reads, {late} after a newer write returned, worst {worst:.4f}s")
