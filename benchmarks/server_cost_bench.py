#!/usr/bin/env python
"""Redis's own CPU per cache operation: ours beside django-redis and Django, same run.

On a shared Redis the server is the scarce resource, and a Lua script costs it more
than the plain command it stands for. For every operation (and a rate-limit check, a
page hit and a tracked write), each candidate makes ``--calls`` calls after a
``CONFIG RESETSTAT``, ``--repeats`` times in alternation (the median is kept); per call:

* ``usec``: ``INFO commandstats`` microseconds of what the calls made Redis run, per
  call: for each command, its ``usec`` times the share of its calls the client sent
  itself (the commands a script runs are inside the script's own ``usec``; so are those
  an ``EXEC`` runs, which is left out for that reason);
* ``cpu``: the server's main-thread CPU (``INFO cpu``, user + system) over the calls, per
  call: command time plus reading requests and writing replies;
* the commands the client sent (``EVALSHA`` marks a script).

Background commands are left out (``INFO``, ``CONFIG RESETSTAT``, ``HELLO``, ``CLIENT``
set-up, a local tier's ``PING``/``ROLE``). Candidates:

* ``ours``: ``django_creator_cache.backend.RedisCache``;
* ``django-redis``: ``django_redis.cache.RedisCache``;
* ``django``: Django's ``django.core.cache.backends.redis.RedisCache``.

Rows no peer has (``ttl``, ``expire``) are run by the candidates that have them; the
rate-limit check is ours (``Limiter.hit``, sliding and fixed window) beside
django-ratelimit's ``is_ratelimited`` (add + incr) on the peers; the page hit is
``cache_response`` beside Django's ``cache_page`` on the peers (a view behind Django's
WSGI handler, no middleware); the tracked writes are ``cache.set("news:<n>", v)`` (its
root's index) and ``cache.set("news:<n>", v, tags=[...])`` (three indexes) beside a plain
``set`` of the same key on the peers.

Run from the repository root::

    python benchmarks/server_cost_bench.py [--calls 300] [--repeats 5] [--no-pin] [--cpu N]
                                           [--json out.json]
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness
from benchmarks.harness import payload

CANDIDATES = ("ours", "django-redis", "django")
SCRIPT_COMMANDS = frozenset({"evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro"})
TIMEOUT = 300
KEYS = [f"many{i}" for i in range(10)]
urlpatterns: list[Any] = []


def configure_django(url: str) -> None:
    harness.configure_django(
        {name: harness.cache_entry(name, url, name[:3]) for name in CANDIDATES},
        apps=["django.contrib.auth", "django.contrib.contenttypes"],
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["testserver"],
        RATELIMIT_CACHE="ours",
        MIDDLEWARE=[],
    )
    from django.http import HttpRequest, HttpResponse
    from django.urls import path
    from django.views.decorators.cache import cache_page

    from django_creator_cache.views_cache import cache_response

    body = payload(2048)

    def page(request: HttpRequest) -> HttpResponse:
        return HttpResponse(body)

    urlpatterns.extend(
        [
            path("ours/", cache_response(ttl=TIMEOUT, cache="ours", name="cost")(page)),
            path("django-redis/", cache_page(TIMEOUT, cache="django-redis")(page)),
            path("django/", cache_page(TIMEOUT, cache="django")(page)),
        ]
    )


Rows = dict[str, dict[str, Callable[[], Any]]]


def rows_for(caches: dict[str, Any]) -> Rows:
    """Every row: candidate -> one call (set-up done here, outside the measurement)."""
    value = payload(100)
    fresh = itertools.count()
    rows: Rows = {}

    def each(
        make: Callable[[Any], Callable[[], Any]], only: tuple[str, ...] = CANDIDATES
    ) -> dict[str, Callable[[], Any]]:
        return {name: make(caches[name]) for name in only}

    for cache in caches.values():
        cache.set("hit", value, TIMEOUT)
        cache.set("counter", 0, TIMEOUT)
        cache.set_many(dict.fromkeys(KEYS, value), TIMEOUT)
    rows["get (hit)"] = each(lambda c: lambda: c.get("hit"))
    rows["get (miss)"] = each(lambda c: lambda: c.get("absent"))
    rows["set"] = each(lambda c: lambda: c.set("written", value, TIMEOUT))
    rows["set (no expiry)"] = each(lambda c: lambda: c.set("forever", value, None))
    rows["add (new key)"] = each(lambda c: lambda: c.add(f"added{next(fresh)}", value, TIMEOUT))
    rows["add (key exists)"] = each(lambda c: lambda: c.add("hit", value, TIMEOUT))
    rows["incr"] = each(lambda c: lambda: c.incr("counter"))
    rows["decr"] = each(lambda c: lambda: c.decr("counter"))
    rows["get_many (10 keys)"] = each(lambda c: lambda: c.get_many(KEYS))
    rows["set_many (10 keys)"] = each(
        lambda c: lambda: c.set_many(dict.fromkeys(KEYS, value), TIMEOUT)
    )
    rows["delete (key exists)"] = each(lambda c: _deleter(c, "del", value))
    rows["delete (missing key)"] = each(lambda c: lambda: c.delete("absent"))
    rows["delete_many (10 keys)"] = each(lambda c: lambda: c.delete_many(KEYS))
    rows["touch"] = each(lambda c: lambda: c.touch("hit", TIMEOUT))
    rows["has_key"] = each(lambda c: lambda: c.has_key("hit"))
    rows["get_or_set (hit)"] = each(lambda c: lambda: c.get_or_set("hit", value, TIMEOUT))
    rows["ttl"] = each(lambda c: lambda: c.ttl("hit"), ("ours", "django-redis"))
    rows["expire"] = each(lambda c: lambda: c.expire("hit", TIMEOUT), ("ours", "django-redis"))
    return rows


def _deleter(cache: Any, stem: str, value: Any) -> Callable[[], Any]:
    """``delete`` of a key that exists: keys written beforehand, one per call."""
    names = (f"{stem}{i}" for i in itertools.count())
    made: list[str] = []

    def prepare(calls: int) -> None:
        batch = [next(names) for _ in range(calls)]
        cache.set_many(dict.fromkeys(batch, value), TIMEOUT)
        made.extend(batch)

    def call() -> Any:
        return cache.delete(made.pop())

    call.prepare = prepare  # type: ignore[attr-defined]
    return call


def feature_rows(caches: dict[str, Any]) -> Rows:
    """The rate-limit check, the page hit and the tracked write."""
    from django.conf import settings
    from django.test import RequestFactory
    from django_ratelimit.core import is_ratelimited

    from django_creator_cache.ratelimit import Limiter
    from django_creator_cache.ratelimit.keys import ip_key

    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.9")
    rate = "1000000000/h"

    def limiter(algorithm: str) -> Callable[[], Any]:
        limit = Limiter(f"cost-{algorithm}", rate, algorithm=algorithm)
        return lambda: limit.hit(ip_key(request)).allowed

    def django_ratelimit(alias: str) -> Callable[[], Any]:
        def call() -> Any:
            settings.RATELIMIT_USE_CACHE = alias
            return not is_ratelimited(request, group="cost", key="ip", rate=rate, increment=True)

        return call

    rows: Rows = {
        "rate-limit check (ours: sliding window)": {
            "ours": limiter("sliding_window"),
            "django-redis": django_ratelimit("django-redis"),
            "django": django_ratelimit("django"),
        },
        "rate-limit check (ours: fixed window)": {
            "ours": limiter("fixed_window"),
            "django-redis": django_ratelimit("django-redis"),
            "django": django_ratelimit("django"),
        },
    }
    pages = {name: harness.wsgi_requester(f"/{name}/") for name in CANDIDATES}
    for name, get in pages.items():
        get()  # fill
        status, headers, _ = get()
        if not status.startswith("200") or (name == "ours" and headers.get("X-Cache") != "HIT"):
            raise SystemExit(f"page of {name}: {status} {headers.get('X-Cache')}")
    rows["page hit (2 KB)"] = pages
    value = payload(100)
    counter = itertools.count()
    rows["tracked write (set news:<n>)"] = {
        "ours": lambda: caches["ours"].set(f"news:{next(counter) % 100}", value, TIMEOUT),
        "django-redis": lambda: caches["django-redis"].set(
            f"news:{next(counter) % 100}", value, TIMEOUT
        ),
        "django": lambda: caches["django"].set(f"news:{next(counter) % 100}", value, TIMEOUT),
    }
    rows["tracked write (set news:<n> with 2 tags)"] = {
        "ours": lambda: caches["ours"].set(
            f"news:{next(counter) % 100}", value, TIMEOUT, tags=["news", "front"]
        ),
        "django-redis": lambda: caches["django-redis"].set(
            f"news:{next(counter) % 100}", value, TIMEOUT
        ),
        "django": lambda: caches["django"].set(f"news:{next(counter) % 100}", value, TIMEOUT),
    }
    return rows


def main_thread_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


def measure(server: Any, call: Callable[[], Any], calls: int) -> dict[str, Any]:
    """usec (commandstats), cpu (INFO cpu) and commands sent, per call."""
    prepare = getattr(call, "prepare", None)
    if prepare is not None:
        prepare(calls)
    client = server.client()
    cost: list[harness.Cost] = []
    cpu: list[float] = []

    def action() -> None:
        before = main_thread_cpu(client)
        cost.append(harness.measure_cost(server, call, calls))
        cpu.append(main_thread_cpu(client) - before)

    stats = harness.server_cpu(server, action)
    sent = cost[0].sent
    usec = 0.0
    for command, (executed, spent) in stats.items():
        base = command.split("|", 1)[0]
        if base == "exec":
            continue  # the queued commands are counted by themselves
        own = sent.get(base, 0.0) * calls
        usec += spent * min(own, executed) / executed if executed else 0.0
    return {
        "usec": usec / calls,
        "cpu_usec": 1e6 * cpu[0] / calls,
        "sent": sent,
        "script": bool(SCRIPT_COMMANDS & set(sent)),
    }


def _median(measured: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "usec": statistics.median(m["usec"] for m in measured),
        "cpu_usec": statistics.median(m["cpu_usec"] for m in measured),
        "sent": measured[0]["sent"],
        "script": measured[0]["script"],
    }


def parse_args(argv: list[str] | None = None) -> Any:
    parser = harness.arguments(__doc__)
    parser.add_argument(
        "--calls", type=int, default=300, help="calls per measurement (default 300)"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="measurements per row and candidate (default 5)"
    )
    return harness.parse(parser, argv, ("calls", "repeats"))


def bench(args: Any, server: Any, cpu: int | None) -> int:
    configure_django(server.url)
    from django.core.cache import caches

    backends = {name: caches[name] for name in CANDIDATES}
    rows = rows_for(backends)
    rows.update(feature_rows(backends))
    print(f"# server cost benchmark: {len(rows)} rows, {args.calls} calls each", flush=True)
    started = time.perf_counter()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for row, calls in rows.items():
        for call in calls.values():
            prepare = getattr(call, "prepare", None)
            if prepare is not None:
                prepare(1)
            call()  # warm: connections, scripts loaded
        # Candidates alternate, --repeats times; the median of each figure is kept (a
        # command's usec grows when redis-server is preempted in the middle of it).
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in calls}
        for repeat in range(args.repeats):
            for name in harness.rotated(list(calls), repeat):
                runs[name].append(measure(server, calls[name], args.calls))
        results[row] = {name: _median(measured) for name, measured in runs.items()}
    duration = time.perf_counter() - started
    harness.require_no_errors(backends["ours"])
    meta = harness.versions(
        ("Django", "redis-py", "django-redis", "django-ratelimit"), harness.server_version(server)
    )
    return harness.finish(
        args,
        meta,
        {"per_call": results},
        pinned=cpu,
        method=f"{args.repeats} measurements of {args.calls} calls per row and candidate, "
        "candidates alternating, median kept; each after CONFIG RESETSTAT; usec from "
        "INFO commandstats (commands the client sent, a script's inner commands inside its "
        "own usec), cpu from INFO cpu (main thread, user + system).",
        ran=duration,
        tables=[table(results)],
    )


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    header = ["operation"]
    for name in CANDIDATES:
        header += [f"{name} usec", f"{name} commands"]
    header += ["ours / django-redis (usec)", "cpu usec (ours, django-redis, django)"]
    rows = []
    for row, per in results.items():
        line = [row]
        for name in CANDIDATES:
            got = per.get(name)
            line += ["-", "-"] if got is None else [f"{got['usec']:.2f}", _spelled(got["sent"])]
        ours, peer = per["ours"]["usec"], per.get("django-redis", {}).get("usec")
        line.append(harness.fmt_ratio(ours / peer) if peer else "-")
        line.append(", ".join(f"{per[n]['cpu_usec']:.1f}" if n in per else "-" for n in CANDIDATES))
        rows.append(line)
    return harness.markdown_table(header, rows, "l" + "rl" * len(CANDIDATES) + "rr")


def _spelled(sent: dict[str, float]) -> str:
    names = sorted(sent, key=lambda n: (-sent[n], n))
    return " ".join(n.upper() if sent[n] == 1 else f"{n.upper()}x{sent[n]:.3g}" for n in names)


def main(argv: list[str] | None = None) -> int:
    return harness.run_pinned(parse_args(argv), bench)


if __name__ == "__main__":
    sys.exit(main())
