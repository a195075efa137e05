#!/usr/bin/env python
"""Local-tier hits beside Redis hits: the same backend, the same keys, the same run.

Candidates, all ``django_creator_cache.backend.RedisCache`` on one redis-server:

* ``redis``: the default configuration: every ``get`` is one ``GET``;
* ``local``: ``OPTIONS["LOCAL_TIER"] = {}``: a ``get`` of a key read before is served
  in-process (tracking confirmed, no round trip);
* plus, for scale, Django's ``LocMemCache`` (in-process, not coherent across processes).

Rows: ``get`` hit of a 100 B and a 10 KB value, ``get_many`` of 10 such keys (100 B),
``aget`` hit (100 B, in an event loop), and, for the local tier, a hit while another
client writes the key 100 times a second (the invalidations are applied; some reads
then fetch). One thread; candidates alternate slice by slice in a rotating order;
``--rounds`` rounds, ratios per round, median over rounds. The script starts its own
redis-server and pins itself and the server to one CPU (``--no-pin`` to turn that off),
like the other benchmarks (``harness.py``).

Run from the repository root::

    python benchmarks/local_tier_bench.py [--rounds 5] [--iterations 20000] [--slices 10]
                                          [--no-pin] [--cpu N] [--json results.json]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness
from benchmarks.harness import median_ratio, payload, run_cell

CANDIDATES = ("redis", "local", "locmem")
ROWS = ("get hit 100 B", "get hit 10 KB", "get_many 10 100 B", "aget hit 100 B")
CHURN_ROW = "get hit 100 B, 100 writes/s by another client"
TIMEOUT = 300
# Calls made by one invocation of a row's callable (aget: a batch inside the loop, so
# run_until_complete's own cost is not what is measured).
BATCH = {"aget hit 100 B": 100}


def configure_django(url: str) -> None:
    harness.configure_django(
        {
            "redis": harness.cache_entry("ours", url, "r"),
            "local": harness.cache_entry("ours", url, "l", {"LOCAL_TIER": {}}),
            "locmem": {"BACKEND": harness.BACKENDS["locmem"]},
        }
    )


def calls_for(cache: Any, loop: asyncio.AbstractEventLoop) -> dict[str, Callable[[], Any]]:
    small, big = payload(100), payload(10 * 1024)
    cache.set("small", small, TIMEOUT)
    cache.set("big", big, TIMEOUT)
    many = [f"m{i}" for i in range(10)]
    cache.set_many(dict.fromkeys(many, small), TIMEOUT)

    async def aget_hits() -> Any:
        for _ in range(BATCH["aget hit 100 B"]):
            value = await cache.aget("small")
        return value

    return {
        "get hit 100 B": lambda: cache.get("small"),
        "get hit 10 KB": lambda: cache.get("big"),
        "get_many 10 100 B": lambda: cache.get_many(many),
        "aget hit 100 B": lambda: loop.run_until_complete(aget_hits()),
        CHURN_ROW: lambda: cache.get("churn"),
    }


class Churn:
    """Another client rewriting ``churn`` of the local candidate 100 times a second."""

    def __init__(self, url: str, full_key: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.key = full_key
        self.stop = threading.Event()
        self.writes = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import pickle

        value = payload(100)
        while not self.stop.wait(0.01):
            self.writes += 1
            self.client.set(self.key, pickle.dumps((self.writes, value), 5), ex=TIMEOUT)


def table(results: dict[str, dict[str, list[float]]]) -> str:
    rows = []
    for row, per in results.items():
        median = {name: statistics.median(v) for name, v in per.items() if v}
        rows.append(
            [
                row,
                harness.fmt_ops(median["redis"]),
                harness.fmt_ops(median["local"]),
                harness.fmt_ratio(median_ratio(per["local"], per["redis"]), 1),
                harness.fmt_ops(median["locmem"]) if "locmem" in median else "-",
            ]
        )
    header = [
        "operation",
        "Redis hit ops/s",
        "local tier hit ops/s",
        "local/Redis",
        "LocMemCache ops/s",
    ]
    return harness.markdown_table(header, rows, "lrrrr")


def parse_args(argv: list[str] | None = None) -> Any:
    return harness.parse(harness.arguments(__doc__, rounds=5, iterations=20000, slices=10), argv)


def bench(args: Any, server: Any, cpu: int | None) -> int:
    configure_django(server.url)
    from django.core.cache import caches

    loop = asyncio.new_event_loop()
    candidates = {name: caches[name] for name in CANDIDATES}
    calls = {name: calls_for(cache, loop) for name, cache in candidates.items()}
    local = candidates["local"]
    tier = local.local_tier
    if tier is None or not tier.wait_serving(10):
        raise SystemExit("the local tier is not serving")
    local.set("churn", (0, payload(100)), TIMEOUT)
    for name in CANDIDATES:  # warm-up: connections, the tier's first fetch of every key
        for row in (*ROWS, CHURN_ROW):
            run_cell(calls[name][row], max(200 // BATCH.get(row, 1), 2))
    churn = Churn(server.url, local.make_key("churn"))
    churn.thread.start()

    def runners(row: str) -> tuple[str, ...]:
        return CANDIDATES if row != CHURN_ROW else ("redis", "local")

    def run(row: str, name: str) -> tuple[int, float]:
        batch = BATCH.get(row, 1)
        per_slice = max(args.iterations // args.slices // batch, 1)
        return per_slice * batch, run_cell(calls[name][row], per_slice)[0]

    print(f"# local tier benchmark: {args.rounds} rounds x {args.iterations} calls per cell")
    started = time.perf_counter()
    results = harness.interleaved(
        (*ROWS, CHURN_ROW), runners, run, rounds=args.rounds, slices=args.slices
    )
    duration = time.perf_counter() - started
    churn.stop.set()
    churn.thread.join(5)
    loop.close()
    if local.get("churn")[0] != churn.writes:  # the last write is what the tier serves
        raise SystemExit("the local tier serves a value older than the last write")
    from django_creator_cache.backend import local_tier

    state = tier.state()
    local_tier.shutdown_all()  # before the server stops

    counters = local.runtime.counters
    harness.require_no_errors(local, candidates["redis"])
    if not state["serving"]:
        raise SystemExit("the local tier was not serving at the end")
    meta = harness.versions(("Django", "redis-py", "hiredis"), harness.server_version(server))

    print()
    print(table(results))
    print()
    print(
        f"Local candidate: {counters.local_hits:,} local hits, {counters.hits:,} Redis hits; "
        f"{churn.writes} writes by the other client, {state['invalidations']:,} keys "
        "invalidated by message."
    )
    return harness.finish(
        args,
        meta,
        {
            "ops_per_second": results,
            "local_hits": counters.local_hits,
            "redis_hits": counters.hits,
            "churn_writes": churn.writes,
            "invalidations": state["invalidations"],
        },
        pinned=cpu,
        method=f"{args.rounds} rounds; every row run by every candidate in {args.slices} "
        "alternating slices (order rotated); ratios per round, median over rounds.",
        timed=duration,
    )


def main(argv: list[str] | None = None) -> int:
    return harness.run_pinned(parse_args(argv), bench)


if __name__ == "__main__":
    raise SystemExit(main())
