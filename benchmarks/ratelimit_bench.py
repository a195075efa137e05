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
prebuilt request. Pinning, interleaving and medians as in ``backend_bench.py``: the script
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

import argparse
import gc
import json
import os
import shlex
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.backend_bench import run_cell, start_server  # noqa: E402

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
    import django
    from django.conf import settings

    caches: dict[str, Any] = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        ALIASES["ours"]: {
            "BACKEND": "django_creator_cache.backend.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": PREFIXES["ours"],
        },
        ALIASES["django-redis"]: {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": PREFIXES["django-redis"],
        },
    }
    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        INSTALLED_APPS=["django_creator_cache"],
        CACHES=caches,
        CACHE_STATS_FLUSH_INTERVAL=0,
        RATELIMIT_CACHE=ALIASES["ours"],
        LOGGING_CONFIG=None,
        ALLOWED_HOSTS=["*"],
    )
    django.setup()


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


def spend(calls: dict[Candidate, Callable[[], bool]], limit: int) -> None:
    """Use up the limit of every candidate (the over-the-limit workload)."""
    for candidate, call in calls.items():
        results = [call() for _ in range(limit + 1)]
        if results != [True] * limit + [False]:
            raise SystemExit(f"{LABELS[candidate]}: limit {limit} not enforced: {results}")


def verify(server: Any) -> None:
    """Every candidate must have written under its own prefix on the benchmark server."""
    client = server.client()
    for name, prefix in PREFIXES.items():
        if not any(True for _ in client.scan_iter(match=f"{prefix}:*", count=1000)):
            raise SystemExit(f"no {name} keys in the benchmark server")


@dataclass
class Cost:
    """What one check costs, averaged over MEASURED_CHECKS checks."""

    round_trips: float  # socket writes (a pipeline is one)
    sent: dict[str, float]  # commands the client packed, by name
    executed: dict[str, float]  # commands Redis ran (INFO commandstats), scripts' included


def measure_cost(server: Any, call: Callable[[], bool]) -> Cost:
    import redis.connection

    writes = [0]
    sent: Counter[str] = Counter()
    originals = {
        "send": redis.connection.AbstractConnection.send_packed_command,
        "hiredis": redis.connection.HiredisRespSerializer.pack,
        "python": redis.connection.PythonRespSerializer.pack,
    }

    def send(conn: Any, command: Any, check_health: bool = True) -> None:
        writes[0] += 1
        originals["send"](conn, command, check_health)

    def packer(original: Callable[..., Any]) -> Callable[..., Any]:
        def pack(self: Any, *args: Any) -> Any:
            name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
            sent[name.split()[0].lower()] += 1
            return original(self, *args)

        return pack

    before = server.commandstats()
    redis.connection.AbstractConnection.send_packed_command = send
    redis.connection.HiredisRespSerializer.pack = packer(originals["hiredis"])
    redis.connection.PythonRespSerializer.pack = packer(originals["python"])
    try:
        for _ in range(MEASURED_CHECKS):
            call()
    finally:
        redis.connection.AbstractConnection.send_packed_command = originals["send"]
        redis.connection.HiredisRespSerializer.pack = originals["hiredis"]
        redis.connection.PythonRespSerializer.pack = originals["python"]
    after = server.commandstats()
    # Reading INFO costs one HELLO and one INFO of its own.
    executed = {
        name: (after[name] - before.get(name, 0)) / MEASURED_CHECKS
        for name in after
        if name not in ("info", "hello") and after[name] != before.get(name, 0)
    }
    return Cost(
        writes[0] / MEASURED_CHECKS,
        {name: n / MEASURED_CHECKS for name, n in sent.items()},
        executed,
    )


def fmt_commands(per_check: dict[str, float]) -> str:
    """``2: SET, EVALSHA`` (total per check, then each command; xn when not once)."""
    total = sum(per_check.values())
    names = sorted(per_check, key=lambda name: (-per_check[name], name))
    parts = [n.upper() if per_check[n] == 1 else f"{n.upper()}x{per_check[n]:.3g}" for n in names]
    return f"{total:.3g}: " + ", ".join(parts)


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument(
        "--iterations", type=int, default=2000, help="checks per timed cell (default 2000)"
    )
    parser.add_argument(
        "--slices", type=int, default=10, help="slices per cell, candidates alternating"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin this process and redis-server to one CPU"
    )
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if min(args.rounds, args.iterations, args.slices) < 1:
        raise SystemExit("--rounds, --iterations and --slices must be positive")
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    cpu: int | None = None
    if not args.no_pin:
        cpu = max(os.sched_getaffinity(0)) if args.cpu is None else args.cpu
        os.sched_setaffinity(0, {cpu})
    server = start_server(cpu)
    try:
        return bench(args, server, cpu, command)
    finally:
        server.close()


def bench(args: argparse.Namespace, server: Any, cpu: int | None, command: str) -> int:
    configure_django(server.url)
    from django.core.cache import caches

    calls = {workload: build_calls(workload, rate) for workload, rate in WORKLOADS.items()}
    spend(calls["over the limit"], int(WORKLOADS["over the limit"].split("/")[0]))
    verify(server)
    expected = {"under the limit": True, "over the limit": False}
    costs = {
        (workload, c): measure_cost(server, calls[workload][c])
        for workload in WORKLOADS
        for c in CANDIDATES
    }

    print(f"# rate-limit benchmark: {len(CANDIDATES)} candidates, {args.rounds} rounds", flush=True)
    for by_candidate in calls.values():  # warm-up
        for call in by_candidate.values():
            run_cell(call, max(args.iterations // 4, 5))
    results: dict[tuple[str, Candidate], list[float]] = {
        (w, c): [] for w in WORKLOADS for c in CANDIDATES
    }
    started = time.perf_counter()
    per_slice = max(args.iterations // args.slices, 1)
    for round_no in range(args.rounds):
        gc.collect()
        for workload in WORKLOADS:
            elapsed = dict.fromkeys(CANDIDATES, 0.0)
            for slice_no in range(args.slices):
                shift = (round_no + slice_no) % len(CANDIDATES)
                for candidate in CANDIDATES[shift:] + CANDIDATES[:shift]:
                    seconds, last = run_cell(calls[workload][candidate], per_slice)
                    if last is not expected[workload]:
                        raise SystemExit(f"{LABELS[candidate]} {workload}: allowed={last}")
                    elapsed[candidate] += seconds
            for candidate in CANDIDATES:
                results[workload, candidate].append(per_slice * args.slices / elapsed[candidate])
        print(f"  round {round_no + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    duration = time.perf_counter() - started
    errors = caches[ALIASES["ours"]]._counters.errors
    if errors:
        raise SystemExit(f"our backend counted {errors} Redis errors during the run")

    lines = [
        "| workload | candidate (algorithm) | checks/s | vs django-ratelimit on django-redis "
        "| round trips/check | commands sent/check | commands Redis ran/check |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = []
    for workload in WORKLOADS:
        for candidate in CANDIDATES:
            rates = results[workload, candidate]
            base = BASELINES[candidate.level]
            ratio = statistics.median(
                a / b for a, b in zip(rates, results[workload, base], strict=True)
            )
            cost = costs[workload, candidate]
            lines.append(
                f"| {workload} | {candidate.level}: {LABELS[candidate]} | "
                f"{statistics.median(rates):,.0f} | {ratio:.2f}x | {cost.round_trips:.3g} | "
                f"{fmt_commands(cost.sent)} | {fmt_commands(cost.executed)} |"
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
    import django
    import django_redis
    import redis

    meta = {
        "python": sys.version.split()[0],
        "django": django.get_version(),
        "redis-py": redis.__version__,
        "django-redis": django_redis.__version__,
        "django-ratelimit": version("django-ratelimit"),
        "redis-server": server.client().info("server")["redis_version"],
    }
    print()
    print("\n".join(lines))
    print()
    print(
        "Versions: Python {python}, Django {django}, redis-py {redis-py}, "
        "django-redis {django-redis}, django-ratelimit {django-ratelimit}, "
        "Redis {redis-server}".format(**meta)
    )
    pinned = f"yes, benchmark and redis-server on CPU {cpu}" if cpu is not None else "no"
    print(f"Pinned: {pinned}")
    print(
        f"Method: {args.rounds} rounds x {args.iterations} checks per cell in {args.slices} "
        "alternating slices; checks/s median over rounds; ratios per round, median; "
        f"commands and round trips over {MEASURED_CHECKS} checks per candidate."
    )
    print(f"Timed part: {duration:.0f} s. Command: {command}")
    if args.json:
        document = {"command": command, "pinned_cpu": cpu, "versions": meta, "rows": rows}
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
