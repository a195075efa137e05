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
by default it and the server are pinned to one CPU (see ``harness.py``).

Run from the repository root::

    python benchmarks/response_bench.py [--rounds 7] [--requests 3000] [--slices 10]
                                        [--no-pin] [--cpu N] [--json results.json]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness
from benchmarks.harness import Response, median_ratio, run_cell

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


def configure_django(url: str) -> None:
    harness.configure_django(
        {
            "ours": harness.cache_entry("ours", url, "ours"),
            "django_redis": harness.cache_entry("django-redis", url, "djr"),
        },
        apps=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
        ],
        SECRET_KEY="benchmark-only",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    )
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


def checked(get: Callable[[], Response], expected: bytes, must_hit: bool, url: str) -> None:
    status, headers, body = get()
    if status != "200 OK" or body != expected:
        raise SystemExit(f"{url}: unexpected response {status}")
    if must_hit and headers.get("X-Cache") != "HIT":
        raise SystemExit(f"{url}: X-Cache is {headers.get('X-Cache')!r}, expected HIT")


def run_slice(get: Callable[[], Response], requests: int) -> float:
    return run_cell(get, requests)[0]


def commands_per_hit(server: Any, get: Callable[[], Response], hits: int) -> dict[str, float]:
    """Redis commands per request, from ``INFO commandstats`` around ``hits`` requests."""
    return harness.per_call(harness.commands_during(server, lambda: run_cell(get, hits)), hits)


def parse_args(argv: list[str] | None = None) -> Any:
    parser = harness.arguments(__doc__, rounds=7, slices=10)
    parser.add_argument(
        "--requests", type=int, default=3000, help="requests per candidate, page and round"
    )
    return harness.parse(parser, argv, ("requests",))


def bench(args: Any, server: Any, cpu: int | None) -> int:
    configure_django(server.url)
    gets = {
        (name, page): harness.wsgi_requester(f"/{URLS[name]}/{rows}/")
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
    started = time.perf_counter()
    for page in PAGES:  # warm-up
        for name in CANDIDATES:
            run_slice(gets[name, page], per_slice)

    def run(page: str, name: str) -> tuple[int, float]:
        get = gets[name, page]
        seconds = run_slice(get, per_slice)
        checked(get, expected[name, page], name == "cache_response", name)
        return per_slice, seconds

    results = harness.interleaved(
        PAGES, lambda page: CANDIDATES, run, rounds=args.rounds, slices=args.slices
    )
    duration = time.perf_counter() - started
    if {k: v for k, v in renders.items() if k != "no cache"} != {
        k: v for k, v in filled.items() if k != "no cache"
    }:
        raise SystemExit(f"a cached view rendered during timing: {renders}")

    print()
    print(report(results, commands))
    meta = harness.versions(("Django", "redis-py", "django-redis"), harness.server_version(server))
    print()
    print(
        "The view itself, uncached: "
        + ", ".join(f"{ms:.2f} ms per request ({page})" for page, ms in render_ms.items())
        + "."
    )
    return harness.finish(
        args,
        meta,
        {
            "requests_per_second": results,
            "commands_per_hit": commands,
            "uncached_render_ms": render_ms,
        },
        pinned=cpu,
        method=f"{args.rounds} rounds of {per_slice * args.slices} requests per candidate and "
        f"page, in {args.slices} alternating slices; ratios per round, median over rounds.",
        timed=duration,
    )


def report(
    results: dict[str, dict[str, list[float]]], commands: dict[str, dict[str, float]]
) -> str:
    def ratio(page: str, top: str, bottom: str) -> str:
        return harness.fmt_ratio(median_ratio(results[page][top], results[page][bottom]))

    header = [
        "page",
        *(f"{name} req/s" for name in CANDIDATES),
        "ours / cache_page (same backend)",
        "ours / cache_page (django-redis)",
    ]
    rows = [
        [
            page,
            *(harness.fmt_ops(statistics.median(per_round[name])) for name in CANDIDATES),
            ratio(page, "cache_response", "cache_page, our backend"),
            ratio(page, "cache_response", "cache_page, django-redis"),
        ]
        for page, per_round in results.items()
    ]
    spelled = [
        [name, ", ".join(f"{calls:g} {command.upper()}" for command, calls in per_hit.items())]
        for name, per_hit in commands.items()
    ]
    return "\n".join(
        [
            harness.markdown_table(header, rows, "l" + "r" * (len(CANDIDATES) + 2)),
            "",
            harness.markdown_table(["candidate", "Redis commands per hit"], spelled),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    return harness.run_pinned(parse_args(argv), bench)


if __name__ == "__main__":
    sys.exit(main())
