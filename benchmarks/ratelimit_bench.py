#!/usr/bin/env python
"""Rate-limit checks per second and Redis commands per check: ours beside django-ratelimit.

Candidates, all on one real redis-server, each under its own key prefix:

* ``ours``: ``django_creator_cache.ratelimit`` on our backend; the core
  (``Limiter.hit(ip_key(request))``) with each algorithm, and the ``@rate_limited`` view
  decorator (sliding window, ``key="ip"``);
* ``django-ratelimit``: ``django_ratelimit.core.is_ratelimited(..., increment=True)`` and
  the ``@ratelimit`` view decorator (``key="ip"``, its fixed window), on a cache alias using
  our backend and on one using django-redis (``RATELIMIT_USE_CACHE`` is switched between
  the two, it is read per call).

Two workloads: ``under the limit`` (a limit of 10^9 per hour: every check passes) and
``over the limit`` (10 per hour, spent before timing: every check is refused; a refused
``@ratelimit`` raises ``Ratelimited``, caught here, where ours returns a 429 response).
Each check gets a fresh state (``request.ratelimit`` / ``request.limited`` dropped) on one
prebuilt request. Pinning, interleaving and medians as in ``harness.py``: the script
and redis-server share one CPU, candidates alternate slice by slice in a rotating order,
ratios are per round then the median over rounds.

Cost per check, over 200 checks of each candidate: round trips (socket writes of the
client), commands sent (packed by the client, by name) and commands Redis ran
(``INFO commandstats`` deltas: a Lua script's own commands count there too).

Run from the repository root::

    python benchmarks/ratelimit_bench.py [--rounds 7] [--iterations 2000] [--slices 10]
                                         [--no-pin] [--cpu N] [--json results.json]
"""

from __future__ import annotations

import operator
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness
from benchmarks.harness import fmt_commands, run_cell

ALIASES = {"ours": "ours", "django-redis": "django_redis"}
PREFIXES = {"ours": "ours", "django-redis": "djr"}
WORKLOADS = {"under the limit": "1000000000/h", "over the limit": "10/h"}
MEASURED_CHECKS = 200
REMOTE_ADDR = "203.0.113.7"


@dataclass(frozen=True)
class Candidate:
    name: str
    level: str  # "core" or "decorator": compared with django-ratelimit at the same level
    algorithm: str


DR_FIXED = "fixed window: add + incr"
CANDIDATES = (
    Candidate("ours Limiter.hit", "core", "sliding_window"),
    Candidate("ours Limiter.hit", "core", "fixed_window"),
    Candidate("ours Limiter.hit", "core", "token_bucket"),
    Candidate("dr is_ratelimited / ours", "core", DR_FIXED),
    Candidate("dr is_ratelimited / django-redis", "core", DR_FIXED),
    Candidate("ours @rate_limited", "decorator", "sliding_window"),
    Candidate("dr @ratelimit / ours", "decorator", DR_FIXED),
    Candidate("dr @ratelimit / django-redis", "decorator", DR_FIXED),
)
BASELINES = {"core": CANDIDATES[4], "decorator": CANDIDATES[7]}
# Display names: "dr" is django-ratelimit.
LABELS = {c: f"{c.name} ({c.algorithm})" for c in CANDIDATES}


def configure_django(url: str) -> None:
    harness.configure_django(
        {alias: harness.cache_entry(name, url, PREFIXES[name]) for name, alias in ALIASES.items()},
        RATELIMIT_CACHE=ALIASES["ours"],
        ALLOWED_HOSTS=["*"],
    )


# -- candidates -------------------------------------------------------------------------------


def ok(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse("ok")


def build_calls(workload: str, rate: str) -> dict[Candidate, Callable[[], bool]]:
    """One zero-argument call per candidate; each returns whether the check allowed."""
    from django.conf import settings
    from django.test import RequestFactory
    from django_ratelimit.core import is_ratelimited
    from django_ratelimit.decorators import ratelimit
    from django_ratelimit.exceptions import Ratelimited

    from django_creator_cache.ratelimit import Limiter, rate_limited
    from django_creator_cache.ratelimit.keys import ip_key

    request = RequestFactory().get("/", REMOTE_ADDR=REMOTE_ADDR)
    state = request.__dict__
    calls: dict[Candidate, Callable[[], bool]] = {}
    for index, candidate in enumerate(CANDIDATES):
        group = f"bench-{workload.split()[0]}-{index}"  # a counter of its own
        if candidate.name == "ours Limiter.hit":
            limiter = Limiter(group, rate, algorithm=candidate.algorithm)

            def call(limiter: Any = limiter) -> bool:
                return bool(limiter.hit(ip_key(request)).allowed)

        elif candidate.name == "ours @rate_limited":
            view = rate_limited(rate=rate, group=group)(ok)

            def call(view: Any = view) -> bool:
                state.pop("ratelimit", None)
                return bool(view(request).status_code == 200)

        elif candidate.name.startswith("dr is_ratelimited"):
            alias = ALIASES[candidate.name.rsplit("/ ", 1)[1]]

            def call(alias: str = alias, group: str = group) -> bool:
                settings.RATELIMIT_USE_CACHE = alias
                return not is_ratelimited(request, group=group, key="ip", rate=rate, increment=True)

        else:
            alias = ALIASES[candidate.name.rsplit("/ ", 1)[1]]
            view = ratelimit(group=group, key="ip", rate=rate)(ok)

            def call(alias: str = alias, view: Any = view) -> bool:
                settings.RATELIMIT_USE_CACHE = alias
                state.pop("limited", None)
                try:
                    return bool(view(request).status_code == 200)
                except Ratelimited:
                    return False

        calls[candidate] = call
    return calls


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> Any:
    parser = harness.arguments(
        __doc__, rounds=7, iterations=2000, iterations_help="checks per timed cell", slices=10
    )
    return harness.parse(parser, argv)


def bench(args: Any, server: Any, cpu: int | None) -> int:
    configure_django(server.url)
    from django.core.cache import caches

    calls = {workload: build_calls(workload, rate) for workload, rate in WORKLOADS.items()}
    limit = int(WORKLOADS["over the limit"].split("/")[0])
    harness.spend(calls["over the limit"], limit, LABELS.__getitem__)
    harness.require_keys(server, {name: f"{prefix}:*" for name, prefix in PREFIXES.items()})
    expected = {"under the limit": True, "over the limit": False}
    costs = {
        (workload, c): harness.measure_cost(server, calls[workload][c], MEASURED_CHECKS)
        for workload in WORKLOADS
        for c in CANDIDATES
    }

    print(f"# rate-limit benchmark: {len(CANDIDATES)} candidates, {args.rounds} rounds", flush=True)
    for by_candidate in calls.values():  # warm-up
        for call in by_candidate.values():
            run_cell(call, max(args.iterations // 4, 5))
    per_slice = max(args.iterations // args.slices, 1)

    def run(workload: str, candidate: Candidate) -> tuple[int, float]:
        ok = partial(operator.is_, expected[workload])
        what = f"{LABELS[candidate]} {workload}"
        return harness.checked(calls[workload][candidate], per_slice, ok, what)

    started = time.perf_counter()
    results = harness.interleaved(
        WORKLOADS, lambda workload: CANDIDATES, run, rounds=args.rounds, slices=args.slices
    )
    duration = time.perf_counter() - started
    harness.require_no_errors(caches[ALIASES["ours"]])

    lines, rows = [], []
    for workload in WORKLOADS:
        for candidate in CANDIDATES:
            rates = results[workload][candidate]
            base = BASELINES[candidate.level]
            ratio = harness.median_ratio(rates, results[workload][base])
            cost = costs[workload, candidate]
            lines.append(
                [
                    workload,
                    f"{candidate.level}: {LABELS[candidate]}",
                    harness.fmt_ops(statistics.median(rates)),
                    harness.fmt_ratio(ratio),
                    f"{cost.round_trips:.3g}",
                    fmt_commands(cost.sent),
                    fmt_commands(cost.executed),
                ]
            )
            rows.append(
                {
                    "workload": workload,
                    "candidate": LABELS[candidate],
                    "level": candidate.level,
                    "median_checks_per_s": statistics.median(rates),
                    "ratio_vs_baseline": ratio,
                    "round_trips_per_check": cost.round_trips,
                    "commands_sent_per_check": cost.sent,
                    "commands_run_per_check": cost.executed,
                    "rounds": rates,
                }
            )
    header = [
        "workload",
        "candidate (algorithm)",
        "checks/s",
        "vs django-ratelimit on django-redis",
        "round trips/check",
        "commands sent/check",
        "commands Redis ran/check",
    ]
    meta = harness.versions(
        ("Django", "redis-py", "django-redis", "django-ratelimit"), harness.server_version(server)
    )
    return harness.finish(
        args,
        meta,
        {"rows": rows},
        tables=[harness.markdown_table(header, lines)],
        pinned=cpu,
        method=f"{args.rounds} rounds x {args.iterations} checks per cell in {args.slices} "
        "alternating slices; checks/s median over rounds; ratios per round, median; "
        f"commands and round trips over {MEASURED_CHECKS} checks per candidate.",
        timed=duration,
    )


def main(argv: list[str] | None = None) -> int:
    return harness.run_pinned(parse_args(argv), bench)


if __name__ == "__main__":
    sys.exit(main())
