#!/usr/bin/env python
"""Async throughput: our native ``a*`` methods beside Django's ``RedisCache`` async methods.

Candidates, on the same redis-server, each under its own key prefix, in the same run:

* ``raw``: ``redis.asyncio.Redis`` (hiredis parser, one pool per loop), values pickled by
  hand, keys built with an f-string: the async floor;
* ``ours``: ``django_creator_cache.backend.RedisCache`` ``aget``/``aset``/``aget_many``
  (redis.asyncio in the running loop, no thread);
* ``django``: Django's ``django.core.cache.backends.redis.RedisCache`` ``aget``/``aset``/
  ``aget_many``: ``BaseCache``'s ``sync_to_async(..., thread_sensitive=True)`` around the
  sync methods (a thread hop per call, all calls through one thread).

Each cell is ``--tasks`` concurrent tasks (default 100) in one event loop, each making
``--calls`` calls in a row (a fifth of that for ``aget_many``); ops/s = all calls / wall
time. Candidates alternate cell by
cell in a rotating order, ``--rounds`` rounds; ratios are per round, median over rounds.
The script starts its own redis-server (free port, temp dir) and stops it at the end. No
CPU pinning by default: the thread hop is the point, and threads need cores
(``--pin`` puts this process and redis-server on one CPU).

Run from the repository root::

    python benchmarks/async_bench.py [--rounds 5] [--tasks 100] [--calls 50] [--pin] [--cpu N]
                                     [--json results.json]
"""

from __future__ import annotations

import asyncio
import os
import pickle
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness
from benchmarks.harness import median_ratio, payload

CANDIDATES = ("raw", "ours", "django")
PREFIXES = {"raw": "raw", "ours": "ours", "django": "dj"}
TIMEOUT = 300
ROWS = ("aget hit 100 B", "aget miss", "aset 100 B", "aget_many 10 100 B")
# Calls per task in a cell = --calls // divisor (Django's aget_many is ten thread hops).
DIVISORS = {"aget_many 10 100 B": 5}
PROTOCOL = pickle.HIGHEST_PROTOCOL


class RawAsync:
    """The same calls written directly on redis.asyncio (the floor)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self._clients: dict[int, Any] = {}

    def _client(self) -> Any:
        import redis.asyncio

        loop = id(asyncio.get_running_loop())
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = redis.asyncio.Redis.from_url(self.url)
        return client

    async def aget(self, key: str, default: Any = None) -> Any:
        raw = await self._client().get(f"{self.prefix}:1:{key}")
        return default if raw is None else pickle.loads(raw)

    async def aset(self, key: str, value: Any, timeout: int) -> bool:
        data = pickle.dumps(value, PROTOCOL)
        return bool(await self._client().set(f"{self.prefix}:1:{key}", data, ex=timeout))

    async def aget_many(self, keys: list[str]) -> dict[str, Any]:
        values = await self._client().mget([f"{self.prefix}:1:{k}" for k in keys])
        return {k: pickle.loads(v) for k, v in zip(keys, values, strict=True) if v is not None}


def configure_django(url: str) -> None:
    harness.configure_django(
        {name: harness.cache_entry(name, url, PREFIXES[name]) for name in CANDIDATES[1:]}
    )


def calls_for(cache: Any, value: str) -> dict[str, Callable[[int, int], Awaitable[Any]]]:
    """One coroutine function per row: (task number, call number) -> awaitable."""
    many = [f"m{i}" for i in range(10)]
    return {
        "aget hit 100 B": lambda t, i: cache.aget("hit"),
        "aget miss": lambda t, i: cache.aget(f"miss-{t}-{i}"),
        "aset 100 B": lambda t, i: cache.aset(f"set-{t}", value, TIMEOUT),
        "aget_many 10 100 B": lambda t, i: cache.aget_many(many),
    }


async def prepare(cache: Any, value: str) -> None:
    await cache.aset("hit", value, TIMEOUT)
    for i in range(10):
        await cache.aset(f"m{i}", value, TIMEOUT)
    assert await cache.aget("hit") == value, "the candidate does not read back what it wrote"
    assert len(await cache.aget_many([f"m{i}" for i in range(10)])) == 10


async def cell(call: Callable[[int, int], Awaitable[Any]], tasks: int, calls: int) -> float:
    """Seconds for ``tasks`` concurrent tasks making ``calls`` calls each."""

    async def worker(task: int) -> None:
        for i in range(calls):
            await call(task, i)

    started = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in range(tasks)))
    return time.perf_counter() - started


def bench_loop(args: Any, candidates: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    loop = asyncio.new_event_loop()
    try:
        value = payload(100)
        for cache in candidates.values():
            loop.run_until_complete(prepare(cache, value))
        calls = {name: calls_for(cache, value) for name, cache in candidates.items()}
        # Warm-up: pools fill up, the thread-hop executor starts.
        for row in ROWS:
            for name in CANDIDATES:
                loop.run_until_complete(cell(calls[name][row], args.tasks, max(args.calls // 5, 2)))

        def run(row: str, name: str) -> tuple[int, float]:
            per_task = max(args.calls // DIVISORS.get(row, 1), 1)
            seconds = loop.run_until_complete(cell(calls[name][row], args.tasks, per_task))
            return args.tasks * per_task, seconds

        # One cell per candidate and row a round (slices=1): the order rotates every round.
        return harness.interleaved(ROWS, lambda row: CANDIDATES, run, rounds=args.rounds, slices=1)
    finally:
        loop.close()


def table(results: dict[str, dict[str, list[float]]], tasks: int) -> str:
    rows = []
    for row, per in results.items():
        median = {name: harness.fmt_ops(statistics.median(v)) for name, v in per.items()}
        rows.append(
            [
                row,
                median["raw"],
                median["ours"],
                median["django"],
                harness.fmt_ratio(median_ratio(per["ours"], per["django"])),
                harness.fmt_ratio(median_ratio(per["ours"], per["raw"])),
            ]
        )
    header = [
        f"operation ({tasks} tasks)",
        "raw redis.asyncio ops/s",
        "ours ops/s",
        "Django RedisCache ops/s",
        "ours/Django",
        "ours/raw",
    ]
    return harness.markdown_table(header, rows, "lrrrrr")


def parse_args(argv: list[str] | None = None) -> Any:
    parser = harness.arguments(__doc__, rounds=5, pin=False)
    parser.add_argument("--tasks", type=int, default=100, help="concurrent tasks (default 100)")
    parser.add_argument("--calls", type=int, default=50, help="calls per task per cell")
    return harness.parse(parser, argv, ("tasks", "calls"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with harness.pinned_server(args) as (server, cpu):
        configure_django(server.url)
        from django.core.cache import caches

        candidates = {
            "raw": RawAsync(server.url, PREFIXES["raw"]),
            "ours": caches["ours"],
            "django": caches["django"],
        }
        print(f"# async benchmark: {args.tasks} tasks x {args.calls} calls, {args.rounds} rounds")
        started = time.perf_counter()
        results = bench_loop(args, candidates)
        duration = time.perf_counter() - started
        harness.require_no_errors(candidates["ours"])
        meta = harness.versions(("Django", "redis-py", "hiredis"), harness.server_version(server))

    print()
    print(table(results, args.tasks))
    print()
    return harness.finish(
        args,
        meta,
        {"pinned_cpu": cpu, "ops_per_second": results},
        pinned=f"{harness.pinned_text(cpu)}; CPUs: {len(os.sched_getaffinity(0))}",
        method=f"{args.rounds} rounds; each cell: {args.tasks} concurrent tasks x "
        f"{args.calls} calls in one event loop; candidates alternate cell by cell "
        "(order rotated); ratios per round, median over rounds.",
        timed=duration,
    )


if __name__ == "__main__":
    raise SystemExit(main())
