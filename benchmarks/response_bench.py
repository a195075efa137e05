#!/usr/bin/env python
"""Requests per second of a cached page on a hit, beside the handler's floor.

Candidates, all serving the same page through Django's full WSGI handler (URL
resolution, request signals and a usual middleware stack of sessions, common, CSRF,
auth and messages), all on one real redis-server:

* ``floor``: a view returning the page's bytes as a constant ``HttpResponse``, no cache:
  what the handler and middleware cost by themselves;
* ``cache_response, local tier``: ``cache_response`` on an alias with
  ``OPTIONS["LOCAL_TIER"]`` (a hit is served in-process while tracking is confirmed);
* ``cache_response``: ``cache_response`` on our backend without the tier (one ``GET``);
* ``cache_page, our backend``: Django's ``cache_page`` on the same alias;
* ``cache_page, django-redis``: Django's ``cache_page`` on ``django_redis.cache.RedisCache``;
* ``floor + raw GET``: the floor's view that also makes one redis-py ``GET`` of the page's
  bytes (a raw client, no Django cache): what one round trip adds *inside a request*, for
  the goal "a hit costs at most the floor plus 1.2x one raw GET round trip";
* ``raw GET`` (not a page): the same ``GET`` in a tight loop, for reference (between the
  requests of a handler, redis-server and the CPU caches go cold, so a round trip inside a
  request costs more than in a loop).

Two ways in, same candidates: ``in process`` (``WSGIHandler`` called with a WSGI environ
as a server would) and ``gunicorn`` (one ``gthread`` worker with one thread, pinned like
redis-server, requests over one keep-alive HTTP/1.1 connection from this process).

For scale, the view undecorated (it renders a template each time) is timed once per page,
outside the rounds. Every cached candidate is filled once before timing; during timing
each response is checked (status, body, ``X-Cache: HIT`` for ours) and the view must not
render again. Redis commands per hit are read from ``INFO commandstats`` around a separate
run of hits. Candidates alternate slice by slice (order rotated), ratios are computed per
round, and the median over rounds is reported. The script starts its own redis-server
(free port on 127.0.0.1, temp dir, no persistence) and gunicorn, and stops them; by
default it, the server and gunicorn are pinned to one CPU (see ``harness.py``).

Run from the repository root::

    python benchmarks/response_bench.py [--rounds 7] [--requests 3000] [--slices 10]
                                        [--no-gunicorn] [--no-pin] [--cpu N]
                                        [--json results.json]
"""

from __future__ import annotations

import http.client
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness
from benchmarks.harness import Response, median_ratio, run_cell

PAGE_CANDIDATES = (
    "floor",
    "floor + raw GET",
    "cache_response, local tier",
    "cache_response",
    "cache_page, our backend",
    "cache_page, django-redis",
)
RAW = "raw GET"
CANDIDATES = (*PAGE_CANDIDATES, RAW)
URLS = {
    "floor": "floor",
    "floor + raw GET": "floor-get",
    "cache_response, local tier": "local",
    "cache_response": "ours",
    "cache_page, our backend": "page-ours",
    "cache_page, django-redis": "page-djr",
    "no cache": "plain",
}
OURS = ("cache_response, local tier", "cache_response")
# Rows shown on the page: about 2 KB and 40 KB of HTML.
PAGES = {"2 KB page": 20, "40 KB page": 400}
TTL = 300
TEMPLATE = """<html><head><title>Campaigns</title></head><body><table>
{% for row in rows %}<tr><td>{{ row.id }}</td><td>{{ row.name }}</td><td>{{ row.owner }}</td>
<td>{{ row.views }}</td><td>{{ row.budget }}</td></tr>
{% endfor %}</table></body></html>"""
URL_ENV = "DCC_RESPONSE_BENCH_REDIS"  # gunicorn's worker reads the server's URL here

renders: dict[str, int] = {}
urlpatterns: list[Any] = []


def configure_django(url: str) -> None:
    harness.configure_django(
        {
            "ours": harness.cache_entry("ours", url, "ours"),
            "ours_local": harness.cache_entry("ours", url, "tier", {"LOCAL_TIER": {}}),
            "django_redis": harness.cache_entry("django-redis", url, "djr"),
        },
        apps=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
        ],
        SECRET_KEY="benchmark-only",
        ALLOWED_HOSTS=["testserver", "127.0.0.1"],
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


def rows_of(count: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "name": f"Campaign {i}", "owner": f"creator{i % 7}", "views": i * 37}
        | {"budget": i * 12.5}
        for i in range(count)
    ]


def caches_url() -> str:
    from django.conf import settings

    return str(settings.CACHES["ours"]["LOCATION"])


def build_urls() -> None:
    import redis
    from django.http import HttpRequest, HttpResponse
    from django.template import engines
    from django.urls import path
    from django.views.decorators.cache import cache_page

    from django_creator_cache.views_cache import cache_response

    template = engines["django"].from_string(TEMPLATE)
    # The floor's constant bytes: the page as the template renders it (no request context).
    constant = {rows: template.render({"rows": rows_of(rows)}).encode() for rows in PAGES.values()}
    seed = redis.Redis.from_url(caches_url())
    for rows, body in constant.items():
        seed.set(f"raw:{rows}", body)

    def make_view(name: str) -> Callable[[HttpRequest, int], HttpResponse]:
        def view(request: HttpRequest, rows: int) -> HttpResponse:
            renders[name] = renders.get(name, 0) + 1
            return HttpResponse(template.render({"rows": rows_of(rows)}, request))

        return view

    def floor(request: HttpRequest, rows: int) -> HttpResponse:
        return HttpResponse(constant[rows])

    raw = redis.Redis.from_url(caches_url())

    def floor_get(request: HttpRequest, rows: int) -> HttpResponse:
        body = raw.get(f"raw:{rows}")
        return HttpResponse(body)

    views = {
        "floor": floor,
        "floor + raw GET": floor_get,
        "cache_response, local tier": cache_response(ttl=TTL, cache="ours_local", name="bench")(
            make_view("cache_response, local tier")
        ),
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


def application(environ: dict[str, Any], start_response: Any) -> Any:
    """The WSGI app gunicorn serves (``benchmarks.response_bench:application``)."""
    global _handler
    if _handler is None:
        configure_django(os.environ[URL_ENV])
        from django.core.handlers.wsgi import WSGIHandler

        _handler = WSGIHandler()
    return _handler(environ, start_response)


_handler: Any = None


def checked(get: Callable[[], Response], expected: bytes, must_hit: bool, url: str) -> None:
    status, headers, body = get()
    if status != "200 OK" or body != expected:
        raise SystemExit(f"{url}: unexpected response {status}")
    if must_hit and headers.get("X-Cache") != "HIT":
        raise SystemExit(f"{url}: X-Cache is {headers.get('X-Cache')!r}, expected HIT")


def http_requester(port: int, path: str, conn: list[Any]) -> Callable[[], Response]:
    """One GET of ``path`` from gunicorn over a shared keep-alive connection (``conn[0]``)."""

    def get() -> Response:
        if conn[0] is None:
            conn[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection = conn[0]
        try:
            connection.request("GET", path, headers={"Host": "127.0.0.1"})
            reply = connection.getresponse()
            body = reply.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            conn[0] = None
            raise
        if reply.will_close:
            connection.close()
            conn[0] = None
        status = f"{reply.status} {reply.reason}"
        return status, {k: v for k, v in reply.getheaders()}, body

    return get


class Gunicorn:
    """One gunicorn (one gthread worker, one thread) serving :func:`application`."""

    def __init__(self, url: str, cpu: int | None) -> None:
        self.port = harness.free_port()
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "1",
            "--worker-class",
            "gthread",
            "--threads",
            "1",
            "--keep-alive",
            "60",
            "--log-level",
            "warning",
            "--chdir",
            str(harness.REPO),
            "benchmarks.response_bench:application",
        ]
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu), *argv]
        env = {**os.environ, URL_ENV: url, "PYTHONPATH": str(harness.REPO)}
        self.proc = subprocess.Popen(argv, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                http.client.HTTPConnection("127.0.0.1", self.port, timeout=1).connect()
                return
            except OSError:
                time.sleep(0.1)
        self.close()
        raise SystemExit("gunicorn did not start")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def parse_args(argv: list[str] | None = None) -> Any:
    parser = harness.arguments(__doc__, rounds=7, slices=10)
    parser.add_argument(
        "--requests", type=int, default=3000, help="requests per candidate, page and round"
    )
    parser.add_argument(
        "--no-gunicorn", dest="gunicorn", action="store_false", help="in process only"
    )
    return harness.parse(parser, argv, ("requests",))


def prepare(
    gets: dict[tuple[str, str], Callable[[], Response]], what: str
) -> dict[tuple[str, str], bytes]:
    """Fill the cached candidates (first request a MISS for ours), check the next is a hit."""
    expected: dict[tuple[str, str], bytes] = {}
    for (name, page), get in gets.items():
        _, headers, body = get()
        if name in OURS and headers.get("X-Cache") not in ("MISS", "HIT"):
            raise SystemExit(f"{what}, {name}, {page}: X-Cache {headers.get('X-Cache')!r}")
        expected[name, page] = body
    for (name, page), get in gets.items():
        checked(get, expected[name, page], name in OURS, f"{what}, {name}, {page}")
    for page in PAGES:
        bodies = {expected[name, page] for name in ("floor", "floor + raw GET", "cache_response")}
        if len(bodies) != 1:
            raise SystemExit(f"{what}, {page}: the floors do not serve the cached page's bytes")
    return expected


def timed(
    args: Any,
    gets: dict[tuple[str, str], Callable[[], Response]],
    expected: dict[tuple[str, str], bytes],
    raw_get: Callable[[], Any],
    label: str,
) -> dict[str, dict[str, list[float]]]:
    per_slice = max(args.requests // args.slices, 1)
    for page in PAGES:  # warm-up
        for name in PAGE_CANDIDATES:
            run_cell(gets[name, page], per_slice)

    def run(page: str, name: str) -> tuple[int, float]:
        if name == RAW:
            return per_slice, run_cell(raw_get, per_slice)[0]
        get = gets[name, page]
        seconds = run_cell(get, per_slice)[0]
        checked(get, expected[name, page], name in OURS, name)
        return per_slice, seconds

    return harness.interleaved(
        PAGES, lambda page: CANDIDATES, run, rounds=args.rounds, slices=args.slices, label=label
    )


def bench(args: Any, server: Any, cpu: int | None) -> int:
    configure_django(server.url)
    from django.core.cache import caches

    tier = caches["ours_local"].local_tier
    if tier is None or not tier.wait_serving(10):
        raise SystemExit("the local tier is not serving")
    raw = server.client()
    raw.set("raw:2kb", harness.payload(2048))
    raw_get = lambda: raw.get("raw:2kb")  # noqa: E731
    names = (*PAGE_CANDIDATES, "no cache")
    gets = {
        (name, page): harness.wsgi_requester(f"/{URLS[name]}/{rows}/")
        for name in names
        for page, rows in PAGES.items()
    }
    expected = prepare(gets, "in process")
    filled = {k: v for k, v in renders.items() if k != "no cache"}
    render_ms = {page: 1000 * run_cell(gets["no cache", page], 50)[0] / 50 for page in PAGES}
    commands = {
        name: {
            command: calls
            for command, calls in harness.per_call(
                harness.commands_during(
                    server, lambda get=gets[name, "2 KB page"]: run_cell(get, 500)
                ),
                500,
            ).items()
            if command not in harness.BACKGROUND  # the local tier's heartbeats
        }
        for name in PAGE_CANDIDATES
    }
    page_gets = {key: get for key, get in gets.items() if key[0] != "no cache"}
    print(f"# response benchmark: {len(PAGE_CANDIDATES)} pages, {args.rounds} rounds", flush=True)
    started = time.perf_counter()
    results = {"in process": timed(args, page_gets, expected, raw_get, "in process: ")}
    if {k: v for k, v in renders.items() if k != "no cache"} != filled:
        raise SystemExit(f"a cached view rendered during timing: {renders}")
    if args.gunicorn:
        served = Gunicorn(server.url, cpu)
        try:
            conn: list[Any] = [None]
            http_gets = {
                (name, page): http_requester(served.port, f"/{URLS[name]}/{rows}/", conn)
                for name in PAGE_CANDIDATES
                for page, rows in PAGES.items()
            }
            http_expected = prepare(http_gets, "gunicorn")
            results["gunicorn"] = timed(args, http_gets, http_expected, raw_get, "gunicorn: ")
        finally:
            served.close()
    duration = time.perf_counter() - started
    harness.require_no_errors(caches["ours"], caches["ours_local"])
    from django_creator_cache.backend import local_tier

    local_tier.shutdown_all()  # before the server stops

    print()
    print(report(results, commands))
    meta = harness.versions(
        ("Django", "redis-py", "django-redis", "gunicorn"), harness.server_version(server)
    )
    print()
    print(
        "The view itself, uncached: "
        + ", ".join(f"{ms:.2f} ms per request ({page})" for page, ms in render_ms.items())
        + "."
    )
    per_slice = max(args.requests // args.slices, 1)
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
        f"page, in {args.slices} alternating slices; ratios per round, median over rounds. "
        "gunicorn: 1 gthread worker, 1 thread, one keep-alive connection.",
        timed=duration,
    )


def report(
    results: dict[str, dict[str, dict[str, list[float]]]], commands: dict[str, dict[str, float]]
) -> str:
    header = [
        "way in",
        "page",
        *(f"{name} req/s" for name in PAGE_CANDIDATES),
        "local tier / floor",
        "cache_response / floor",
        "(cache_response - floor) / (floor + raw GET - floor)",
        "(cache_response - floor) / raw GET in a loop",
        "cache_response / cache_page (same backend)",
    ]
    rows = []
    for way, per_page in results.items():
        for page, per_round in per_page.items():

            def ratio(top: str, bottom: str, per_round: dict[str, list[float]] = per_round) -> str:
                return harness.fmt_ratio(median_ratio(per_round[top], per_round[bottom]))

            # Extra time of a hit over the floor's, in raw GET round trips (inside a request,
            # and in a loop), per round.
            inside = statistics.median(
                (1 / hit - 1 / floor) / (1 / with_get - 1 / floor)
                for hit, floor, with_get in zip(
                    per_round["cache_response"],
                    per_round["floor"],
                    per_round["floor + raw GET"],
                    strict=True,
                )
            )
            extra = statistics.median(
                (1 / hit - 1 / floor) / (1 / get)
                for hit, floor, get in zip(
                    per_round["cache_response"], per_round["floor"], per_round[RAW], strict=True
                )
            )
            rows.append(
                [
                    way,
                    page,
                    *(harness.fmt_ops(statistics.median(per_round[n])) for n in PAGE_CANDIDATES),
                    ratio("cache_response, local tier", "floor"),
                    ratio("cache_response", "floor"),
                    harness.fmt_ratio(inside),
                    harness.fmt_ratio(extra),
                    ratio("cache_response", "cache_page, our backend"),
                ]
            )
    spelled = [
        [
            name,
            ", ".join(f"{calls:g} {command.upper()}" for command, calls in per_hit.items())
            or "none",
        ]
        for name, per_hit in commands.items()
    ]
    raw_rate = statistics.median(
        statistics.median(per_page[RAW]) for per_page in results["in process"].values()
    )
    return "\n".join(
        [
            harness.markdown_table(header, rows, "ll" + "r" * (len(PAGE_CANDIDATES) + 5)),
            "",
            f"One raw redis-py GET (2 KB) in a loop, same run: {1e6 / raw_rate:.0f} us.",
            "",
            harness.markdown_table(["candidate", "Redis commands per hit"], spelled),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    return harness.run_pinned(parse_args(argv), bench)


if __name__ == "__main__":
    sys.exit(main())
