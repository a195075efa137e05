#!/usr/bin/env python
"""Throughput of one cache shared by 1, 8 and 32 threads: ours beside django-redis and Django.

Candidates, one backend instance each, shared by every thread of a cell (as a ``gthread``
worker or an ASGI thread pool shares a process's cache), all on one real redis-server:

* ``ours``: ``django_creator_cache.backend.RedisCache``;
* ``django-redis``: ``django_redis.cache.RedisCache``;
* ``django``: Django's ``django.core.cache.backends.redis.RedisCache``.

Rows: ``get`` (a hit, 100 B), ``set`` (100 B), ``get_many`` (10 keys of 100 B), each at
1, 8 and 32 threads. Then the local tier's hit path (``OPTIONS["LOCAL_TIER"]``) at 1, 8 and
32 threads beside Django's ``LocMemCache``: the tier's hits must not queue on one lock.

A cell starts its threads, releases them together (a barrier), and counts calls per second
from the release until the last thread is done; every thread makes the same number of
calls and checks its last result. Candidates alternate slice by slice in a rotating order;
``--rounds`` rounds, ratios per round, median over rounds. The script starts its own
redis-server and pins itself and the server to one CPU (``--no-pin`` to turn that off).

Run from the repository root::

    python benchmarks/threads_bench.py [--rounds 3] [--iterations 6000] [--slices 3]
                                       [--no-pin] [--cpu N] [--json results.json]
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness
from benchmarks.harness import median_ratio, payload

REDIS_CANDIDATES = ("ours", "django-redis", "django")
LOCAL_CANDIDATES = ("ours, local tier", "locmem")
THREADS = (1, 8, 32)
OPERATIONS = ("get", "set", "get_many")
LOCAL_OPERATION = "local hit"
TIMEOUT = 300
KEYS = [f"m{i}" for i in range(10)]


def configure_django(url: str) -> None:
    harness.configure_django(
        {
            "ours": harness.cache_entry("ours", url, "o"),
            "django-redis": harness.cache_entry("django-redis", url, "d"),
            "django": harness.cache_entry("django", url, "j"),
            "ours, local tier": harness.cache_entry("ours", url, "t", {"LOCAL_TIER": {}}),
            "locmem": {"BACKEND": harness.BACKENDS["locmem"]},
        }
    )


def calls_for(cache: Any) -> dict[str, tuple[Callable[[], Any], Callable[[Any], bool]]]:
    """Each operation of one candidate: (the call, a check of its result)."""
    value = payload(100)
    cache.set("hit", value, TIMEOUT)
    cache.set_many(dict.fromkeys(KEYS, value), TIMEOUT)
    return {
        "get": (lambda: cache.get("hit"), lambda got: got == value),
        "set": (lambda: cache.set("written", value, TIMEOUT), lambda got: got in (None, True)),
        "get_many": (lambda: cache.get_many(KEYS), lambda got: len(got) == len(KEYS)),
        LOCAL_OPERATION: (lambda: cache.get("hit"), lambda got: got == value),
    }


def threaded(call: Callable[[], Any], ok: Callable[[Any], bool], threads: int, calls: int) -> float:
    """Seconds for ``threads`` threads making ``calls`` calls each, from a common start."""
    start = threading.Barrier(threads + 1)
    failures: list[str] = []

    def work() -> None:
        start.wait()
        last = None
        for _ in range(calls):
            last = call()
        if not ok(last):
            failures.append(repr(last)[:80])

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - began
    if failures:
        raise SystemExit(f"unexpected results: {failures[:3]}")
    return seconds


def parse_args(argv: list[str] | None = None) -> Any:
    parser = harness.arguments(
        __doc__, rounds=3, iterations=6000, slices=3, iterations_help="calls per cell and round"
    )
    return harness.parse(parser, argv)


def bench(args: Any, server: Any, cpu: int | None) -> int:
    configure_django(server.url)
    from django.core.cache import caches

    from django_creator_cache.backend import local_tier

    caches_ = {name: caches[name] for name in (*REDIS_CANDIDATES, *LOCAL_CANDIDATES)}
    calls = {name: calls_for(cache) for name, cache in caches_.items()}
    tier = caches_["ours, local tier"].local_tier
    if tier is None or not tier.wait_serving(10):
        raise SystemExit("the local tier is not serving")
    rows = [(op, n) for op in OPERATIONS for n in THREADS]
    rows += [(LOCAL_OPERATION, n) for n in THREADS]

    def runners(row: tuple[str, int]) -> tuple[str, ...]:
        return LOCAL_CANDIDATES if row[0] == LOCAL_OPERATION else REDIS_CANDIDATES

    def run(row: tuple[str, int], name: str) -> tuple[int, float]:
        operation, threads = row
        per_thread = max(args.iterations // args.slices // threads, 1)
        call, ok = calls[name][operation]
        return per_thread * threads, threaded(call, ok, threads, per_thread)

    for row in rows:  # warm-up: connections for every thread count
        for name in runners(row):
            run(row, name)
    print(f"# threads benchmark: {args.rounds} rounds x {args.iterations} calls per cell")
    started = time.perf_counter()
    results = harness.interleaved(rows, runners, run, rounds=args.rounds, slices=args.slices)
    duration = time.perf_counter() - started
    hits = caches_["ours, local tier"].runtime.counters.local_hits
    local_tier.shutdown_all()  # before the server stops
    harness.require_no_errors(caches_["ours"], caches_["ours, local tier"])
    if hits == 0:
        raise SystemExit("the local tier served no hit")
    meta = harness.versions(
        ("Django", "redis-py", "hiredis", "django-redis"), harness.server_version(server)
    )
    tables = [redis_table(results), local_table(results)]
    return harness.finish(
        args,
        meta,
        {"ops_per_second": {f"{op} x{n}": per for (op, n), per in results.items()}},
        pinned=cpu,
        method=f"{args.rounds} rounds of {args.iterations} calls per cell (split over the "
        f"threads), in {args.slices} alternating slices; threads released together; ratios "
        "per round, median over rounds.",
        timed=duration,
        tables=tables,
    )


def redis_table(results: dict[tuple[str, int], dict[str, list[float]]]) -> str:
    header = [
        "operation",
        "threads",
        *(f"{name} ops/s" for name in REDIS_CANDIDATES),
        "ours / django-redis",
        "ours / django",
    ]
    rows = [
        [
            op,
            str(n),
            *(harness.fmt_ops(statistics.median(per[name])) for name in REDIS_CANDIDATES),
            harness.fmt_ratio(median_ratio(per["ours"], per["django-redis"])),
            harness.fmt_ratio(median_ratio(per["ours"], per["django"])),
        ]
        for (op, n), per in results.items()
        if op != LOCAL_OPERATION
    ]
    return harness.markdown_table(header, rows, "llrrrrr")


def local_table(results: dict[tuple[str, int], dict[str, list[float]]]) -> str:
    local = {n: per for (op, n), per in results.items() if op == LOCAL_OPERATION}
    one = {name: statistics.median(local[1][name]) for name in LOCAL_CANDIDATES}
    header = [
        "local hit, threads",
        *(f"{name} ops/s" for name in LOCAL_CANDIDATES),
        *(f"{name} vs 1 thread" for name in LOCAL_CANDIDATES),
        "local tier / LocMemCache",
    ]
    rows = [
        [
            str(n),
            *(harness.fmt_ops(statistics.median(per[name])) for name in LOCAL_CANDIDATES),
            *(
                harness.fmt_ratio(statistics.median(per[name]) / one[name])
                for name in LOCAL_CANDIDATES
            ),
            harness.fmt_ratio(median_ratio(per["ours, local tier"], per["locmem"])),
        ]
        for n, per in local.items()
    ]
    return harness.markdown_table(header, rows, "lrrrrr")


def main(argv: list[str] | None = None) -> int:
    return harness.run_pinned(parse_args(argv), bench)


if __name__ == "__main__":
    sys.exit(main())
