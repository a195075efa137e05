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

1. Checks per second, one connection, one thread, pinned (``harness.py``: the
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

import itertools
import math
import multiprocessing
import operator
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness
from benchmarks.harness import Cost, fmt_commands, run_cell
from benchmarks.ratelimit_bench import MEASURED_CHECKS

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
    harness.configure_django(
        {"default": harness.cache_entry("ours", url, PREFIX)},
        apps=["django.contrib.auth", "django.contrib.contenttypes"],
        ALLOWED_HOSTS=["*"],
        REST_FRAMEWORK={"DEFAULT_THROTTLE_CLASSES": [], "DEFAULT_THROTTLE_RATES": {}},
    )


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


def exactness(url: str, affinity: set[int], args: Any) -> dict[str, list[int]]:
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


def parse_args(argv: list[str] | None = None) -> Any:
    parser = harness.arguments(
        __doc__, rounds=5, iterations=2000, iterations_help="checks per timed cell", slices=10
    )
    parser.add_argument("--processes", type=int, default=4, help="exactness: OS processes")
    parser.add_argument("--threads", type=int, default=4, help="exactness: threads each")
    parser.add_argument("--attempts", type=int, default=50, help="exactness: checks per thread")
    parser.add_argument("--limit", type=int, default=100, help="exactness: limit per minute")
    parser.add_argument("--trials", type=int, default=3, help="exactness: trials per candidate")
    return harness.parse(parser, argv, ("processes", "threads", "attempts", "limit", "trials"))


def bench(args: Any, server: Any, cpu: int | None, every_cpu: set[int]) -> int:
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
    harness.spend(calls["over the limit"], int(WORKLOADS["over the limit"].split("/")[0]))
    costs: dict[tuple[str, str], Cost] = {
        (workload, c): harness.measure_cost(server, calls[workload][c], MEASURED_CHECKS)
        for workload in WORKLOADS
        for c in CANDIDATES
    }
    harness.require_keys(
        server,
        {
            "ours": f"{PREFIX}:*:rl:sliding_window:drf:bench-*",
            "DRF": f"{PREFIX}:*throttle_bench-*",
        },
    )
    expected = {"under the limit": True, "over the limit": False}

    print(f"# DRF throttle benchmark: {len(CANDIDATES)} candidates, {args.rounds} rounds")
    for by_candidate in calls.values():
        for call in by_candidate.values():
            run_cell(call, warm)

    def run(workload: str, candidate: str) -> tuple[int, float]:
        ok = partial(operator.is_, expected[workload])
        return harness.checked(calls[workload][candidate], per_slice, ok, f"{candidate} {workload}")

    started = time.perf_counter()
    results = harness.interleaved(
        WORKLOADS, lambda workload: CANDIDATES, run, rounds=args.rounds, slices=args.slices
    )
    timed = time.perf_counter() - started
    harness.require_no_errors(caches["default"])

    harness.progress("exactness ...")
    exact = exactness(server.url, every_cpu, args)

    speed, rows = [], []
    for workload in WORKLOADS:
        for candidate in CANDIDATES:
            rates = results[workload][candidate]
            base = BASELINE.get(candidate)
            ratio = harness.median_ratio(rates, results[workload][base]) if base else 1.0
            cost = costs[workload, candidate]
            speed.append(
                [
                    workload,
                    LABELS[candidate],
                    harness.fmt_ops(statistics.median(rates)),
                    harness.fmt_ratio(ratio),
                    f"{cost.round_trips:.3g}",
                    fmt_commands(cost.sent),
                ]
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
    exact_rows = [
        [
            LABELS[candidate],
            args.limit,
            attempts,
            ", ".join(map(str, exact[candidate])),
            f"{max(exact[candidate]) - args.limit:+d} (worst)",
        ]
        for candidate in CANDIDATES
    ]
    meta = harness.versions(
        ("Django", "DRF", "redis-py", "hiredis"), harness.server_version(server)
    )
    print()
    print(
        harness.markdown_table(
            [
                "workload",
                "throttle",
                "checks/s",
                "ours/DRF",
                "round trips/check",
                "commands sent/check",
            ],
            speed,
            "llrrr",
        )
    )
    print()
    print(
        harness.markdown_table(
            [
                "throttle",
                "limit",
                f"attempts ({args.processes} processes x {args.threads} threads)",
                f"allowed, {args.trials} trials",
                "over the limit",
            ],
            exact_rows,
            "lrrlr",
        )
    )
    print()
    return harness.finish(
        args,
        meta,
        {
            "pinned_cpu": cpu,
            "rows": rows,
            "exactness": {"limit": args.limit, "attempts": attempts, "allowed": exact},
        },
        pinned=f"{harness.pinned_text(cpu)} (speed part); exactness unpinned",
        method=f"{args.rounds} rounds x {per_slice * args.slices} checks per cell in "
        f"{args.slices} alternating slices; under the limit: {pool} identities per candidate "
        f"(at most {UNDER_BUDGET} hits each of {WORKLOADS['under the limit']}); "
        f"costs over {MEASURED_CHECKS} checks.",
        timed=timed,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    every_cpu = os.sched_getaffinity(0)
    with harness.pinned_server(args) as (server, cpu):
        return bench(args, server, cpu, every_cpu)


if __name__ == "__main__":
    sys.exit(main())
