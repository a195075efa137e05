#!/usr/bin/env python
"""DRF throttles: ours (``django_creator_cache.ratelimit.drf``) against DRF's own, same backend.

Candidates, all on one real redis-server, through one cache alias using our
``RedisCache`` (DRF's own throttles store their history lists in it):

* ``ours AnonRateThrottle`` / ``ours UserRateThrottle``: one Lua script per check
  (sliding window, the default);
* ``DRF AnonRateThrottle`` / ``DRF UserRateThrottle``: ``rest_framework.throttling``, which
  reads a list of past hits (``GET``), trims it, and writes it back (``SET``).

Each check is what DRF does per request and throttle: make the throttle, call
``allow_request(request, view)``; anonymous requests for the anon throttles, an
authenticated user for the user throttles.

1. Checks per second, one connection, one thread, pinned like ``backend_bench.py`` (the
   script and redis-server share one CPU; candidates alternate slice by slice in a
   rotating order; medians over rounds, ratios per round then the median). Workloads:
   ``under the limit``: 1000 per hour, identities taken in turn from a pool sized so that
   none passes 800 hits in the run (so every window holds up to 800 hits, and DRF reads
   and writes lists of up to 800 timestamps); ``over the limit``: 100 per hour, used up
   before timing, every check refused. Round trips and commands per check measured over
   200 checks, as in ``ratelimit_bench.py``.
2. Exactness: ``--processes`` OS processes x ``--threads`` threads, started together,
   each thread making ``--attempts`` checks for one client against a limit of ``--limit``
   per minute; how many were allowed, over ``--trials`` trials per candidate (unpinned:
   the processes use every CPU, redis-server stays on its own).

Run from the repository root (needs the ``bench`` and ``drf`` extras)::

    python benchmarks/drf_throttle_bench.py [--rounds 5] [--iterations 2000] [--slices 10]
        [--processes 4] [--threads 4] [--attempts 50] [--limit 100] [--trials 3]
        [--no-pin] [--cpu N] [--json results.json]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import multiprocessing
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.backend_bench import run_cell, start_server  # noqa: E402
from benchmarks.ratelimit_bench import MEASURED_CHECKS, Cost, fmt_commands, measure_cost  # noqa: E402

PREFIX = "drfbench"
CANDIDATES = ("ours Anon", "DRF Anon", "ours User", "DRF User")
BASELINE = {"ours Anon": "DRF Anon", "ours User": "DRF User"}
LABELS = {
    "ours Anon": "ours `AnonRateThrottle`",
    "DRF Anon": "DRF `AnonRateThrottle`",
    "ours User": "ours `UserRateThrottle`",
    "DRF User": "DRF `UserRateThrottle`",
}
WORKLOADS = {"under the limit": "1000/hour", "over the limit": "100/hour"}
UNDER_BUDGET = 800  # hits per identity at most in the under-the-limit workload


def configure_django(url: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django_creator_cache",
        ],
        CACHES={
            "default": {
                "BACKEND": "django_creator_cache.backend.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": PREFIX,
            }
        },
        CACHE_STATS_FLUSH_INTERVAL=0,
        LOGGING_CONFIG=None,
        ALLOWED_HOSTS=["*"],
        REST_FRAMEWORK={"DEFAULT_THROTTLE_CLASSES": [], "DEFAULT_THROTTLE_RATES": {}},
    )
    django.setup()


class Member:
    """An authenticated user, as DRF's ``request.user`` after authentication."""

    is_authenticated = True

    def __init__(self, pk: int) -> None:
        self.pk = pk


def throttle_class(candidate: str, scope: str, rate: str) -> type:
    """The candidate's throttle with its own scope (so its own keys) and rate."""
    from rest_framework import throttling

    from django_creator_cache.ratelimit import drf

    kind = candidate.split()[1]  # Anon or User
    module: Any = drf if candidate.startswith("ours") else throttling
    base = getattr(module, f"{kind}RateThrottle")
    return type(f"{candidate.replace(' ', '')}Bench", (base,), {"scope": scope, "rate": rate})


def requests_for(candidate: str, identities: int, salt: int = 0) -> list[Any]:
    """DRF requests, one per identity: anonymous from distinct addresses, or distinct users."""
    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory
    from rest_framework.request import Request

    factory = RequestFactory()
    out = []
    for n in range(identities):
        request = Request(factory.get("/", REMOTE_ADDR=f"10.{salt}.{n // 250}.{n % 250 + 1}"))
        request.user = AnonymousUser() if "Anon" in candidate else Member(salt * 100_000 + n)
        out.append(request)
    return out


def build_calls(workload: str, rate: str, identities: int) -> dict[str, Callable[[], bool]]:
    """One zero-argument check per candidate; each returns whether it was allowed."""
    from rest_framework.views import APIView

    view = APIView()
    calls: dict[str, Callable[[], bool]] = {}
    for index, candidate in enumerate(CANDIDATES):
        cls = throttle_class(candidate, f"bench-{workload.split()[0]}-{index}", rate)
        pool = itertools.cycle(requests_for(candidate, identities, salt=index))

        def call(cls: type = cls, pool: Any = pool) -> bool:
            return bool(cls().allow_request(next(pool), view))

        calls[candidate] = call
    return calls


def spend(calls: dict[str, Callable[[], bool]], limit: int) -> None:
    """Use up the limit of every candidate (the over-the-limit workload, one identity)."""
    for candidate, call in calls.items():
        results = [call() for _ in range(limit + 1)]
        if results != [True] * limit + [False]:
            raise SystemExit(f"{candidate}: limit {limit} not enforced ({results.count(True)})")


def verify(server: Any) -> None:
    """Both kinds of candidate must have written their keys on the benchmark server."""
    client = server.client()
    for pattern in (f"{PREFIX}:*:rl:sliding_window:drf:bench-*", f"{PREFIX}:*throttle_bench-*"):
        if not any(True for _ in client.scan_iter(match=pattern, count=1000)):
            raise SystemExit(f"no keys matching {pattern} on the benchmark server")


# -- exactness under processes x threads -----------------------------------------------------


def _exactness_worker(
    url: str, affinity: set[int], args: tuple[int, int, int, int], start: Any, results: Any
) -> None:
    os.sched_setaffinity(0, affinity)
    configure_django(url)
    from django.core.cache import caches
    from rest_framework.views import APIView

    threads, attempts, limit, trials = args
    view = APIView()
    caches["default"].get("connect")  # connect before the start line
    for trial, candidate in itertools.product(range(trials), CANDIDATES):
        cls = throttle_class(candidate, f"exact-{trial}-{candidate.replace(' ', '')}", f"{limit}/m")
        request = requests_for(candidate, 1, salt=200)[0]

        def client(_: int, cls: type = cls, request: Any = request) -> int:
            return sum(bool(cls().allow_request(request, view)) for _ in range(attempts))

        start.wait(120)
        with ThreadPoolExecutor(threads) as pool:
            allowed = sum(pool.map(client, range(threads)))
        results.put((trial, candidate, allowed))


def exactness(url: str, affinity: set[int], args: argparse.Namespace) -> dict[str, list[int]]:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(args.processes)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_exactness_worker,
            args=(
                url,
                affinity,
                (args.threads, args.attempts, args.limit, args.trials),
                start,
                results,
            ),
        )
        for _ in range(args.processes)
    ]
    for proc in procs:
        proc.start()
    allowed: dict[tuple[int, str], int] = {}
    try:
        for _ in range(args.processes * args.trials * len(CANDIDATES)):
            trial, candidate, count = results.get(timeout=300)
            allowed[trial, candidate] = allowed.get((trial, candidate), 0) + count
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
    if any(proc.exitcode for proc in procs):
        raise SystemExit(f"exactness workers failed: {[proc.exitcode for proc in procs]}")
    return {
        candidate: [allowed[trial, candidate] for trial in range(args.trials)]
        for candidate in CANDIDATES
    }


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--iterations", type=int, default=2000, help="checks per timed cell")
    parser.add_argument("--slices", type=int, default=10, help="slices per cell, alternating")
    parser.add_argument("--processes", type=int, default=4, help="exactness: OS processes")
    parser.add_argument("--threads", type=int, default=4, help="exactness: threads each")
    parser.add_argument("--attempts", type=int, default=50, help="exactness: checks per thread")
    parser.add_argument("--limit", type=int, default=100, help="exactness: limit per minute")
    parser.add_argument("--trials", type=int, default=3, help="exactness: trials per candidate")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    positive = (args.rounds, args.iterations, args.slices, args.processes, args.threads)
    if min(*positive, args.attempts, args.limit, args.trials) < 1:
        raise SystemExit("every count must be positive")
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    every_cpu = os.sched_getaffinity(0)
    cpu: int | None = None
    if not args.no_pin:
        cpu = max(every_cpu) if args.cpu is None else args.cpu
        os.sched_setaffinity(0, {cpu})
    server = start_server(cpu)
    try:
        return bench(args, server, cpu, every_cpu, command)
    finally:
        server.close()


def bench(
    args: argparse.Namespace, server: Any, cpu: int | None, every_cpu: set[int], command: str
) -> int:
    configure_django(server.url)
    from django.core.cache import caches

    warm = max(args.iterations // 4, 5)
    per_slice = max(args.iterations // args.slices, 1)
    # Checks each candidate makes in the under-the-limit workload, for sizing its pool.
    under_checks = warm + args.rounds * per_slice * args.slices + MEASURED_CHECKS
    pool = math.ceil(under_checks / UNDER_BUDGET) + 1
    calls = {
        "under the limit": build_calls("under the limit", WORKLOADS["under the limit"], pool),
        "over the limit": build_calls("over the limit", WORKLOADS["over the limit"], 1),
    }
    spend(calls["over the limit"], int(WORKLOADS["over the limit"].split("/")[0]))
    costs: dict[tuple[str, str], Cost] = {
        (workload, c): measure_cost(server, calls[workload][c])
        for workload in WORKLOADS
        for c in CANDIDATES
    }
    verify(server)
    expected = {"under the limit": True, "over the limit": False}

    print(f"# DRF throttle benchmark: {len(CANDIDATES)} candidates, {args.rounds} rounds")
    for by_candidate in calls.values():
        for call in by_candidate.values():
            run_cell(call, warm)
    results: dict[tuple[str, str], list[float]] = {
        (w, c): [] for w in WORKLOADS for c in CANDIDATES
    }
    started = time.perf_counter()
    for round_no in range(args.rounds):
        gc.collect()
        for workload in WORKLOADS:
            elapsed = dict.fromkeys(CANDIDATES, 0.0)
            for slice_no in range(args.slices):
                shift = (round_no + slice_no) % len(CANDIDATES)
                for candidate in CANDIDATES[shift:] + CANDIDATES[:shift]:
                    seconds, last = run_cell(calls[workload][candidate], per_slice)
                    if last is not expected[workload]:
                        raise SystemExit(f"{candidate} {workload}: allowed={last}")
                    elapsed[candidate] += seconds
            for candidate in CANDIDATES:
                results[workload, candidate].append(per_slice * args.slices / elapsed[candidate])
        print(f"  round {round_no + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    timed = time.perf_counter() - started
    errors = caches["default"]._counters.errors
    if errors:
        raise SystemExit(f"our backend counted {errors} Redis errors during the run")

    print("  exactness ...", file=sys.stderr, flush=True)
    exact = exactness(server.url, every_cpu, args)

    speed = [
        "| workload | throttle | checks/s | ours/DRF | round trips/check | commands sent/check |",
        "|---|---|--:|--:|--:|---|",
    ]
    rows = []
    for workload in WORKLOADS:
        for candidate in CANDIDATES:
            rates = results[workload, candidate]
            base = BASELINE.get(candidate)
            ratio = (
                statistics.median(
                    a / b for a, b in zip(rates, results[workload, base], strict=True)
                )
                if base
                else 1.0
            )
            cost = costs[workload, candidate]
            speed.append(
                f"| {workload} | {LABELS[candidate]} | {statistics.median(rates):,.0f} | "
                f"{ratio:.2f}x | {cost.round_trips:.3g} | {fmt_commands(cost.sent)} |"
            )
            rows.append(
                {
                    "workload": workload,
                    "candidate": LABELS[candidate],
                    "median_checks_per_s": statistics.median(rates),
                    "ratio_vs_drf": ratio,
                    "round_trips_per_check": cost.round_trips,
                    "commands_sent_per_check": cost.sent,
                    "rounds": rates,
                }
            )
    attempts = args.processes * args.threads * args.attempts
    exact_lines = [
        f"| throttle | limit | attempts ({args.processes} processes x {args.threads} threads) "
        f"| allowed, {args.trials} trials | over the limit |",
        "|---|--:|--:|---|--:|",
    ]
    for candidate in CANDIDATES:
        allowed = exact[candidate]
        exact_lines.append(
            f"| {LABELS[candidate]} | {args.limit} | {attempts} | "
            f"{', '.join(map(str, allowed))} | {max(allowed) - args.limit:+d} (worst) |"
        )
    import django
    import redis
    import rest_framework

    meta = {
        "python": sys.version.split()[0],
        "django": django.get_version(),
        "djangorestframework": rest_framework.VERSION,
        "redis-py": redis.__version__,
        "hiredis": version("hiredis"),
        "redis-server": server.client().info("server")["redis_version"],
    }
    print()
    print("\n".join(speed))
    print()
    print("\n".join(exact_lines))
    print()
    print(
        "Versions: Python {python}, Django {django}, DRF {djangorestframework}, "
        "redis-py {redis-py}, hiredis {hiredis}, Redis {redis-server}".format(**meta)
    )
    pinned = f"yes, benchmark and redis-server on CPU {cpu}" if cpu is not None else "no"
    print(f"Pinned (speed part): {pinned}; exactness unpinned.")
    print(
        f"Method: {args.rounds} rounds x {per_slice * args.slices} checks per cell in "
        f"{args.slices} alternating slices; under the limit: {pool} identities per candidate "
        f"(at most {UNDER_BUDGET} hits each of {WORKLOADS['under the limit']}); "
        f"costs over {MEASURED_CHECKS} checks."
    )
    print(f"Timed part: {timed:.0f} s. Command: {command}")
    if args.json:
        document = {
            "command": command,
            "pinned_cpu": cpu,
            "versions": meta,
            "rows": rows,
            "exactness": {"limit": args.limit, "attempts": attempts, "allowed": exact},
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
