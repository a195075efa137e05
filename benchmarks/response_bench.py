#!/usr/bin/env python
"""Requests per second of a cached page on a hit: ``cache_response`` against ``cache_page``.

Candidates, all serving the same page through Django's full WSGI handler
(``WSGIHandler``, called with a WSGI environ as a server would: URL resolution,
request signals and a usual middleware stack of sessions, common, CSRF, auth
and messages), all on one real redis-server:

* ``cache_response``: ``django_creator_cache.views_cache.cache_response`` on our
  backend (alias ``ours``);
* ``cache_page, our backend``: Django's ``cache_page`` on the same alias;
* ``cache_page, django-redis``: Django's ``cache_page`` on ``django_redis.cache.RedisCache``.

For scale, the same view undecorated (it renders a template each time) is timed
once per page, outside the rounds.

Every cached candidate is filled once before timing; during timing each
response is checked (status, body, ``X-Cache: HIT`` for ours) and the view must
not render again. Redis commands per hit are read from ``INFO commandstats``
around a separate run of hits, in the same process and on the same server.
Candidates alternate slice by slice (order rotated), ratios are computed per
round, and the median over rounds is reported. The script starts its own
redis-server (free port on 127.0.0.1, temp dir, no persistence) and stops it;
by default it and the server are pinned to one CPU (see ``backend_bench.py``).

Run from the repository root::

    python benchmarks/response_bench.py [--rounds 7] [--requests 3000] [--slices 10]
                                        [--no-pin] [--cpu N] [--json results.json]
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.backend_bench import start_server  # noqa: E402

CANDIDATES = ("cache_response", "cache_page, our backend", "cache_page, django-redis")
URLS = {
    "cache_response": "ours",
    "cache_page, our backend": "page-ours",
    "cache_page, django-redis": "page-djr",
    "no cache": "plain",
}
# Rows shown on the page: about 2 KB and 40 KB of HTML.
PAGES = {"2 KB page": 20, "40 KB page": 400}
TTL = 300
TEMPLATE = """<html><head><title>Campaigns</title></head><body><table>
{% for row in rows %}<tr><td>{{ row.id }}</td><td>{{ row.name }}</td><td>{{ row.owner }}</td>
<td>{{ row.views }}</td><td>{{ row.budget }}</td></tr>
{% endfor %}</table></body></html>"""

renders: dict[str, int] = {}
urlpatterns: list[Any] = []
Response = tuple[str, dict[str, str], bytes]


def configure_django(url: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        SECRET_KEY="benchmark-only",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django_creator_cache",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "ours": {
                "BACKEND": "django_creator_cache.backend.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": "ours",
            },
            "django_redis": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": "djr",
            },
        },
        CACHE_STATS_FLUSH_INTERVAL=0,
        LOGGING_CONFIG=None,
    )
    django.setup()
    build_urls()


def build_urls() -> None:
    from django.http import HttpRequest, HttpResponse
    from django.template import engines
    from django.urls import path
    from django.views.decorators.cache import cache_page

    from django_creator_cache.views_cache import cache_response

    template = engines["django"].from_string(TEMPLATE)

    def make_view(name: str) -> Callable[[HttpRequest, int], HttpResponse]:
        def view(request: HttpRequest, rows: int) -> HttpResponse:
            renders[name] = renders.get(name, 0) + 1
            data = [
                {"id": i, "name": f"Campaign {i}", "owner": f"creator{i % 7}", "views": i * 37}
                | {"budget": i * 12.5}
                for i in range(rows)
            ]
            return HttpResponse(template.render({"rows": data}, request))

        return view

    views = {
        "cache_response": cache_response(ttl=TTL, cache="ours", name="bench")(
            make_view("cache_response")
        ),
        "cache_page, our backend": cache_page(TTL, cache="ours")(make_view("cache_page, ours")),
        "cache_page, django-redis": cache_page(TTL, cache="django_redis")(
            make_view("cache_page, djr")
        ),
        "no cache": make_view("no cache"),
    }
    urlpatterns.extend(path(f"{URLS[name]}/<int:rows>/", view) for name, view in views.items())


def requester(url: str) -> Callable[[], Response]:
    """One GET of ``url`` through Django's WSGI handler, as a WSGI server makes it."""
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()
    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": url,
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        started["status"], started["headers"] = status, headers

    def get() -> Response:
        environ = {**base, "wsgi.input": io.BytesIO()}  # a fresh dict: it becomes request.META
        response = handler(environ, start_response)
        try:
            body = b"".join(response)
        finally:
            response.close()
        return started["status"], dict(started["headers"]), body

    return get


def checked(get: Callable[[], Response], expected: bytes, must_hit: bool, url: str) -> None:
    status, headers, body = get()
    if status != "200 OK" or body != expected:
        raise SystemExit(f"{url}: unexpected response {status}")
    if must_hit and headers.get("X-Cache") != "HIT":
        raise SystemExit(f"{url}: X-Cache is {headers.get('X-Cache')!r}, expected HIT")


def run_slice(get: Callable[[], Response], requests: int) -> float:
    start = time.perf_counter()
    for _ in range(requests):
        get()
    return time.perf_counter() - start


def commands_per_hit(server: Any, get: Callable[[], Response], hits: int) -> dict[str, float]:
    """Redis commands per request, from ``INFO commandstats`` around ``hits`` requests."""
    before = server.commandstats()
    for _ in range(hits):
        get()
    after = server.commandstats()
    delta = {name: after[name] - before.get(name, 0) for name in after}
    for reading in ("info", "hello"):  # the readings themselves (a fresh client each)
        delta.pop(reading, None)
    return {name: calls / hits for name, calls in sorted(delta.items()) if calls}


def versions(server: Any) -> dict[str, str]:
    import django
    import django_redis
    import redis

    return {
        "python": platform.python_version(),
        "django": django.get_version(),
        "redis-py": redis.__version__,
        "django-redis": django_redis.__version__,
        "redis-server": str(server.info("server")["redis_version"]),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument(
        "--requests", type=int, default=3000, help="requests per candidate, page and round"
    )
    parser.add_argument(
        "--slices", type=int, default=10, help="candidates alternate in this many slices"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin this process and redis-server to one CPU"
    )
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if min(args.rounds, args.requests, args.slices) < 1:
        raise SystemExit("--rounds, --requests and --slices must be positive")
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
    gets = {
        (name, page): requester(f"/{URLS[name]}/{rows}/")
        for name in (*CANDIDATES, "no cache")
        for page, rows in PAGES.items()
    }
    expected: dict[tuple[str, str], bytes] = {}
    for (name, page), get in gets.items():
        _, headers, body = get()  # fills the cached ones
        if name == "cache_response" and headers.get("X-Cache") != "MISS":
            raise SystemExit(f"{name}, {page}: the first request was not a MISS")
        expected[name, page] = body
        checked(get, body, name == "cache_response", f"{name}, {page}")
    filled = dict(renders)
    if any(count != len(PAGES) for key, count in filled.items() if key != "no cache"):
        raise SystemExit(f"a cached view rendered more than once per page: {filled}")
    if server.client().dbsize() == 0:
        raise SystemExit("nothing was stored in the Redis server")

    render_ms = {page: 1000 * run_slice(gets["no cache", page], 50) / 50 for page in PAGES}
    commands = {name: commands_per_hit(server, gets[name, "2 KB page"], 500) for name in CANDIDATES}
    print(f"# response benchmark: {len(CANDIDATES)} candidates, {args.rounds} rounds", flush=True)
    per_slice = max(args.requests // args.slices, 1)
    results: dict[str, dict[str, list[float]]] = {
        page: {name: [] for name in CANDIDATES} for page in PAGES
    }
    started = time.perf_counter()
    for page in PAGES:  # warm-up
        for name in CANDIDATES:
            run_slice(gets[name, page], per_slice)
    for round_no in range(args.rounds):
        gc.collect()
        for page in PAGES:
            elapsed = dict.fromkeys(CANDIDATES, 0.0)
            for slice_no in range(args.slices):
                # Rotated order every slice and round: a noisy neighbour slows all alike.
                shift = (round_no + slice_no) % len(CANDIDATES)
                for name in CANDIDATES[shift:] + CANDIDATES[:shift]:
                    get = gets[name, page]
                    elapsed[name] += run_slice(get, per_slice)
                    checked(get, expected[name, page], name == "cache_response", name)
            for name in CANDIDATES:
                results[page][name].append(per_slice * args.slices / elapsed[name])
        print(f"  round {round_no + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    duration = time.perf_counter() - started
    if {k: v for k, v in renders.items() if k != "no cache"} != {
        k: v for k, v in filled.items() if k != "no cache"
    }:
        raise SystemExit(f"a cached view rendered during timing: {renders}")

    print()
    print(report(results, commands))
    meta = versions(server)
    print()
    print(
        "The view itself, uncached: "
        + ", ".join(f"{ms:.2f} ms per request ({page})" for page, ms in render_ms.items())
        + "."
    )
    print(
        "Versions: Python {python}, Django {django}, redis-py {redis-py}, "
        "django-redis {django-redis}, Redis {redis-server}".format(**meta)
    )
    print(f"Pinned: {f'yes, benchmark and redis-server on CPU {cpu}' if cpu is not None else 'no'}")
    print(
        f"Method: {args.rounds} rounds of {per_slice * args.slices} requests per candidate and "
        f"page, in {args.slices} alternating slices; ratios per round, median over rounds."
    )
    print(f"Timed part: {duration:.0f} s. Command: {command}")
    if args.json:
        document = {
            "command": command,
            "pinned_cpu": cpu,
            "versions": meta,
            "requests_per_second": results,
            "commands_per_hit": commands,
            "uncached_render_ms": render_ms,
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0


def report(
    results: dict[str, dict[str, list[float]]], commands: dict[str, dict[str, float]]
) -> str:
    def ratio(page: str, top: str, bottom: str) -> str:
        per_round = results[page]
        value = statistics.median(
            a / b for a, b in zip(per_round[top], per_round[bottom], strict=True)
        )
        return f"{value:.2f}x"

    lines = [
        "| page | "
        + " | ".join(f"{name} req/s" for name in CANDIDATES)
        + " | ours / cache_page (same backend) | ours / cache_page (django-redis) |",
        "|---|" + "--:|" * (len(CANDIDATES) + 2),
    ]
    for page, per_round in results.items():
        medians = [f"{statistics.median(per_round[name]):,.0f}" for name in CANDIDATES]
        lines.append(
            f"| {page} | "
            + " | ".join(medians)
            + f" | {ratio(page, 'cache_response', 'cache_page, our backend')}"
            + f" | {ratio(page, 'cache_response', 'cache_page, django-redis')} |"
        )
    lines += ["", "| candidate | Redis commands per hit |", "|---|---|"]
    for name, per_hit in commands.items():
        spelled = ", ".join(f"{calls:g} {command.upper()}" for command, calls in per_hit.items())
        lines.append(f"| {name} | {spelled} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
