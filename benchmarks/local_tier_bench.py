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
like ``backend_bench.py``.

Run from the repository root::

    python benchmarks/local_tier_bench.py [--rounds 5] [--iterations 20000] [--no-pin]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import shlex
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.backend_bench import payload, start_server  # noqa: E402

CANDIDATES = ("redis", "local", "locmem")
ROWS = ("get hit 100 B", "get hit 10 KB", "get_many 10 100 B", "aget hit 100 B")
CHURN_ROW = "get hit 100 B, 100 writes/s by another client"
TIMEOUT = 300
# Calls made by one invocation of a row's callable (aget: a batch inside the loop, so
# run_until_complete's own cost is not what is measured).
BATCH = {"aget hit 100 B": 100}


def configure_django(url: str) -> None:
    import django
    from django.conf import settings

    base = {"BACKEND": "django_creator_cache.backend.RedisCache", "LOCATION": url}
    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        INSTALLED_APPS=["django_creator_cache"],
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "redis": {**base, "KEY_PREFIX": "r"},
            "local": {**base, "KEY_PREFIX": "l", "OPTIONS": {"LOCAL_TIER": {}}},
            "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        },
        CACHE_STATS_FLUSH_INTERVAL=0,
        LOGGING_CONFIG=None,
    )
    django.setup()


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


def timed(call: Callable[[], Any], iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        call()
    return time.perf_counter() - start


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
    lines = [
        "| operation | Redis hit ops/s | local tier hit ops/s | local/Redis | LocMemCache ops/s |",
        "|---|--:|--:|--:|--:|",
    ]
    for row, per in results.items():
        median = {name: statistics.median(v) for name, v in per.items() if v}
        ratio = statistics.median(a / b for a, b in zip(per["local"], per["redis"], strict=True))
        locmem = f"{median['locmem']:,.0f}" if "locmem" in median else "-"
        lines.append(
            f"| {row} | {median['redis']:,.0f} | {median['local']:,.0f} | {ratio:.1f}x | {locmem} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=20000, help="calls per cell")
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--no-pin", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    cpu: int | None = None
    if not args.no_pin:
        cpu = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    server = start_server(cpu)
    try:
        return bench(args, server, cpu, command)
    finally:
        server.close()


def bench(args: argparse.Namespace, server: Any, cpu: int | None, command: str) -> int:
    configure_django(server.url)
    from django.core.cache import caches

    loop = asyncio.new_event_loop()
    candidates = {name: caches[name] for name in CANDIDATES}
    calls = {name: calls_for(cache, loop) for name, cache in candidates.items()}
    local = candidates["local"]
    tier = local._local
    if tier is None or not tier.wait_serving(10):
        raise SystemExit("the local tier is not serving")
    local.set("churn", (0, payload(100)), TIMEOUT)
    for name in CANDIDATES:  # warm-up: connections, the tier's first fetch of every key
        for row in (*ROWS, CHURN_ROW):
            timed(calls[name][row], max(200 // BATCH.get(row, 1), 2))
    churn = Churn(server.url, local.make_key("churn"))
    churn.thread.start()

    rows = (*ROWS, CHURN_ROW)
    results: dict[str, dict[str, list[float]]] = {r: {n: [] for n in CANDIDATES} for r in rows}
    print(f"# local tier benchmark: {args.rounds} rounds x {args.iterations} calls per cell")
    started = time.perf_counter()
    for round_no in range(args.rounds):
        gc.collect()
        for row in rows:
            names = CANDIDATES if row != CHURN_ROW else ("redis", "local")
            batch = BATCH.get(row, 1)
            per_slice = max(args.iterations // args.slices // batch, 1)
            elapsed = dict.fromkeys(names, 0.0)
            for slice_no in range(args.slices):
                shift = (round_no + slice_no) % len(names)
                for name in names[shift:] + names[:shift]:
                    elapsed[name] += timed(calls[name][row], per_slice)
            for name in names:
                results[row][name].append(per_slice * batch * args.slices / elapsed[name])
        print(f"  round {round_no + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    duration = time.perf_counter() - started
    churn.stop.set()
    churn.thread.join(5)
    loop.close()
    if local.get("churn")[0] != churn.writes:  # the last write is what the tier serves
        raise SystemExit("the local tier serves a value older than the last write")
    from django_creator_cache.backend import local_tier

    state = tier.state()
    local_tier.shutdown_all()  # before the server stops

    counters = local._counters
    if counters.errors or candidates["redis"]._counters.errors:
        raise SystemExit("Redis errors during the run")
    if not state["serving"]:
        raise SystemExit("the local tier was not serving at the end")
    import django
    import hiredis
    import redis

    print()
    print(table(results))
    print()
    print(
        f"Local candidate: {counters.local_hits:,} local hits, {counters.hits:,} Redis hits; "
        f"{churn.writes} writes by the other client, {state['invalidations']:,} keys "
        "invalidated by message."
    )
    print(
        f"Versions: Python {platform.python_version()}, Django {django.get_version()}, "
        f"redis-py {redis.__version__}, hiredis {hiredis.__version__}, "
        f"Redis {server.info('server')['redis_version']}"
    )
    pinned = f"yes, benchmark and redis-server on CPU {cpu}" if cpu is not None else "no"
    print(f"Pinned: {pinned}")
    print(
        f"Method: {args.rounds} rounds; every row run by every candidate in {args.slices} "
        "alternating slices (order rotated); ratios per round, median over rounds."
    )
    print(f"Timed part: {duration:.0f} s. Command: {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
