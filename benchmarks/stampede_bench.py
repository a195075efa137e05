#!/usr/bin/env python
"""Computations per cache stampede: N concurrent callers miss one cold key at once.

Candidates, all on the same redis-server, each under its own key prefix:

* ``ours``: ``django_creator_cache.backend.RedisCache`` (single-flight ``get_or_set``);
* ``django-redis``: ``django_redis.cache.RedisCache``;
* ``django``: Django's ``django.core.cache.backends.redis.RedisCache``.

One stampede: ``--processes`` forked processes x ``--threads`` threads wait on one
barrier, then all call ``get_or_set`` on the same cold key with a function that counts
itself in Redis (INCR on a separate key) and sleeps ``--compute-ms``. Reported per
candidate: how many times the function ran (median, min and max over rounds), and how
long callers took from the barrier to their value (median and max over all callers).
Every caller must get the same value, and no caller may raise. Rounds use fresh keys,
and candidates take turns in an order rotated every round.

The script starts its own redis-server (``--save "" --appendonly no``, free port on
127.0.0.1, temp dir) and stops it at the end. Run from the repository root::

    python benchmarks/stampede_bench.py [--processes 4] [--threads 8] [--rounds 5]
                                        [--compute-ms 200] [--json results.json]
"""

from __future__ import annotations

import multiprocessing
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness

CANDIDATES = ("ours", "django-redis", "django")
ALIASES = {"ours": "ours", "django-redis": "django_redis", "django": "django_builtin"}
PREFIXES = {"ours": "ours", "django-redis": "djr", "django": "dj"}
LABELS = {"ours": "ours", "django-redis": "django-redis", "django": "Django RedisCache"}
TIMEOUT = 300
# The benchmark server's URL and a client of it, set in main() before any fork.
_URL = ""
_raw: Any = None


@dataclass
class Stampede:
    """What one stampede on one candidate did."""

    computations: int
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def configure_django(url: str) -> None:
    harness.configure_django(
        {ALIASES[name]: harness.cache_entry(name, url, PREFIXES[name]) for name in CANDIDATES}
    )


def _caller(
    alias: str, key: str, counter: str, compute_s: float, barrier: Any, results: Any
) -> None:
    """One thread of one process: wait for everyone, then get_or_set the cold key."""
    from django.core.cache import caches

    cache = caches[alias]

    def compute() -> dict[str, Any]:
        _raw_client().incr(counter)
        time.sleep(compute_s)
        return {"computed_for": key, "payload": "x" * 100}

    barrier.wait(timeout=60)
    started = time.perf_counter()
    try:
        value = cache.get_or_set(key, compute, TIMEOUT)
        results.put(("ok", value, time.perf_counter() - started))
    except Exception as exc:  # reported: a stampede must not raise into callers
        results.put(("error", repr(exc), time.perf_counter() - started))


def _raw_client() -> Any:
    """A redis-py client of the benchmark server (counts computations; forks reconnect)."""
    global _raw
    if _raw is None:
        import redis

        _raw = redis.Redis.from_url(_URL)
    return _raw


def _process(
    alias: str, key: str, counter: str, compute_s: float, threads: int, barrier: Any, results: Any
) -> None:
    workers = [
        threading.Thread(target=_caller, args=(alias, key, counter, compute_s, barrier, results))
        for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)


def stampede(name: str, round_no: int, args: Any, raw: Any) -> Stampede:
    ctx = multiprocessing.get_context("fork")
    callers = args.processes * args.threads
    key = f"cold-{round_no}"
    counter = f"bench:calls:{name}:{round_no}"
    barrier = ctx.Barrier(callers)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_process,
            args=(
                ALIASES[name],
                key,
                counter,
                args.compute_ms / 1000,
                args.threads,
                barrier,
                results,
            ),
        )
        for _ in range(args.processes)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in range(callers)]
    for proc in procs:
        proc.join(60)
        if proc.exitcode != 0:
            raise SystemExit(f"{name}: a caller process exited with {proc.exitcode}")
    result = Stampede(int(raw.get(counter) or 0))
    values = []
    for status, value, seconds in outcomes:
        result.latencies.append(seconds)
        if status == "ok":
            values.append(value)
        else:
            result.errors.append(value)
    if values and any(v != values[0] for v in values):
        raise SystemExit(f"{name}: callers got different values for one key")
    if values and values[0].get("computed_for") != key:
        raise SystemExit(f"{name}: unexpected value {values[0]!r}")
    return result


def table(runs: dict[str, list[Stampede]], callers: int) -> tuple[str, list[dict[str, Any]]]:
    lines, rows = [], []
    for name in CANDIDATES:
        counts = [s.computations for s in runs[name]]
        latencies = [t for s in runs[name] for t in s.latencies]
        errors = sum(len(s.errors) for s in runs[name])
        p50, worst = statistics.median(latencies) * 1000, max(latencies) * 1000
        lines.append(
            [
                LABELS[name],
                callers,
                f"{statistics.median(counts):g} ({min(counts)}-{max(counts)})",
                f"{p50:.0f} ms",
                f"{worst:.0f} ms",
                errors,
            ]
        )
        rows.append(
            {
                "candidate": name,
                "computations": counts,
                "latency_p50_ms": p50,
                "latency_max_ms": worst,
                "errors": errors,
            }
        )
    header = [
        "candidate",
        "callers",
        "computations per stampede: median (min-max)",
        "caller latency p50",
        "caller latency max",
        "errors",
    ]
    return harness.markdown_table(header, lines), rows


def parse_args(argv: list[str] | None = None) -> Any:
    parser = harness.arguments(__doc__, rounds=5, pin=None)
    parser.add_argument("--processes", type=int, default=4, help="processes (default 4)")
    parser.add_argument("--threads", type=int, default=8, help="threads per process (default 8)")
    parser.add_argument(
        "--compute-ms", type=int, default=200, help="how long the function takes (default 200)"
    )
    args = harness.parse(parser, argv, ("processes", "threads"))
    if args.compute_ms < 0:
        raise SystemExit("--compute-ms must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    global _URL
    args = parse_args(argv)
    with harness.redis_server() as server:
        _URL = server.url
        configure_django(server.url)
        raw = _raw_client()
        callers = args.processes * args.threads
        runs: dict[str, list[Stampede]] = {name: [] for name in CANDIDATES}
        print(
            f"# stampede benchmark: {args.processes} processes x {args.threads} threads, "
            f"{args.compute_ms} ms computation, {args.rounds} rounds",
            flush=True,
        )
        started = time.perf_counter()
        for round_no in range(args.rounds):
            for name in harness.rotated(CANDIDATES, round_no):
                runs[name].append(stampede(name, round_no, args, raw))
            harness.progress(f"round {round_no + 1}/{args.rounds} done")
        duration = time.perf_counter() - started
        meta = harness.versions(
            ("Django", "redis-py", "hiredis", "django-redis"), harness.server_version(server)
        )

    text, rows = table(runs, callers)
    return harness.finish(
        args,
        meta,
        {"args": vars(args), "rows": rows},
        tables=[text],
        method=f"{args.rounds} stampedes per candidate, each on a fresh cold key: "
        f"{args.processes} forked processes x {args.threads} threads released by one barrier "
        f"call get_or_set(key, f, {TIMEOUT}); f counts itself with INCR and sleeps "
        f"{args.compute_ms} ms. Latency: barrier to value, all callers of all rounds.",
        ran=duration,
    )


if __name__ == "__main__":
    sys.exit(main())
