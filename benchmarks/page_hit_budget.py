#!/usr/bin/env python
"""Where a ``cache_response`` hit's time goes, against what the floor leaves it.

``response_bench.py`` measures whole requests; this one splits a local-tier hit into
its steps, each timed alone (best of ``--rounds`` repeats of ``--iterations`` calls) on
a request that went through ``response_bench``'s middleware stack (sessions, CSRF, auth,
messages), on the same site and redis-server:

* Django's own calls a correct shared-page cache makes on every hit, whoever writes it
  (Django's ``cache_page`` makes them too): ``caches[alias]``, ``get_language()``
  (``USE_I18N``) and ``get_current_timezone_name()`` (``USE_TZ``) for the key, the hit's
  ``HttpResponse`` with its headers (against the floor view's bare ``HttpResponse``);
* ours: the visitor check (``personal.users``), the page key past those calls, the
  tier's ``get``, the hit's response past its ``HttpResponse``, and the rest: the
  decorated view called directly, less every step above and the floor view's own
  ``HttpResponse``.

Then the floor and the local-tier hit through Django's WSGI handler, interleaved
(``--slices``, median over rounds): the goal "a hit at 0.9x the floor" leaves a hit
``floor / 0.9 - floor`` of time over the floor. The table sets each step against that
budget.

Run from the repository root::

    python benchmarks/page_hit_budget.py [--rounds 7] [--iterations 20000] [--slices 10]
                                          [--no-pin] [--cpu N] [--json results.json]
"""

from __future__ import annotations

import statistics
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness, response_bench

ALIAS = "ours_local"
PATH = "/local/20/"  # the 2 KB page


def parse_args(argv: list[str] | None = None) -> Any:
    parser = harness.arguments(__doc__, rounds=7, iterations=20000, slices=10)
    return harness.parse(parser, argv)


def through_middleware(path: str) -> Any:
    """A GET of ``path`` as the view sees it: after the stack's ``process_request``."""
    from django.contrib.auth.middleware import AuthenticationMiddleware
    from django.contrib.messages.middleware import MessageMiddleware
    from django.contrib.sessions.middleware import SessionMiddleware
    from django.http import HttpResponse
    from django.test import RequestFactory

    request = RequestFactory().get(path)
    for middleware in (SessionMiddleware, AuthenticationMiddleware, MessageMiddleware):
        middleware(lambda r: HttpResponse()).process_request(request)  # type: ignore[attr-defined]
    return request


def best(call: Callable[[], Any], args: Any) -> float:
    """Microseconds per call: the best of ``--rounds`` repeats."""
    n = args.iterations
    return min(timeit.repeat(call, number=n, repeat=args.rounds)) / n * 1e6


def steps(args: Any) -> tuple[dict[str, float], dict[str, float]]:
    """Django's own calls and ours, microseconds each."""
    from django.core.cache import caches
    from django.http import HttpResponse
    from django.urls import resolve
    from django.utils.timezone import get_current_timezone_name
    from django.utils.translation import get_language

    from django_creator_cache.views_cache import core, entry, personal
    from django_creator_cache.views_cache.decorator import _served

    cache = caches[ALIAS]
    view = resolve(PATH).func
    request = through_middleware(PATH)
    options = core.PageOptions(
        ttl=float(response_bench.TTL),
        policy=None,
        prefix="views",
        tags=(),
        vary_on_user=False,
        vary_on_headers=(),
        vary_on_query=True,
        key_func=None,
        alias=ALIAS,
        statuses=frozenset({200}),
    )
    key = core.page_key(cache, options, "bench", request, [], (), {})
    if key is None:
        raise SystemExit("no page key for the anonymous request")
    value = cache.get(key)
    page = entry.read(value)
    if page is None:
        raise SystemExit(f"{key}: not a page held by the tier")
    headers = {**page.headers, "X-Cache": core.HIT, "Cache-Control": "public, max-age=300"}
    floor_response = best(lambda: HttpResponse(page.body), args)
    hit_response = best(lambda: HttpResponse(page.body, headers=headers), args)
    language, zone = best(get_language, args), best(get_current_timezone_name, args)
    django = {
        "caches[alias]": best(lambda: caches[ALIAS], args),
        "get_language()": language,
        "get_current_timezone_name()": zone,
        "the hit's HttpResponse, over the floor view's": hit_response - floor_response,
    }
    fresh = best(lambda: through_middleware(PATH), args)
    ours = {
        "visitor check (personal.users)": best(
            lambda: personal.users(through_middleware(PATH)), args
        )
        - fresh,
        "page key, past language and time zone": best(
            lambda: core.page_key(cache, options, "bench", request, [], (), {}), args
        )
        - language
        - zone,
        "tier get (cache.get)": best(lambda: cache.get(key), args),
        "hit response, past its HttpResponse": best(
            lambda: _served(cache, key, value, options, request), args
        )
        - hit_response,
    }
    whole = best(lambda: view(request, 20), args) - floor_response
    ours["the rest (decorator, dispatch)"] = whole - sum(django.values()) - sum(ours.values())
    return django, ours


def whole_requests(args: Any) -> dict[str, list[float]]:
    """Requests per second of the floor and the local-tier hit, per round."""
    get_floor = harness.wsgi_requester("/floor/20/")
    get_hit = harness.wsgi_requester(PATH)
    for get in (get_floor, get_hit):
        harness.run_cell(get, 200)
    if get_hit()[1].get("X-Cache") != "HIT":
        raise SystemExit("the local-tier page is not a hit")
    gets = {"floor": get_floor, "local tier hit": get_hit}
    per_slice = max(args.iterations // 10 // args.slices, 1)

    def run(row: str, name: str) -> tuple[int, float]:
        return per_slice, harness.run_cell(gets[name], per_slice)[0]

    return harness.interleaved(
        ["2 KB"], lambda row: list(gets), run, rounds=args.rounds, slices=args.slices
    )["2 KB"]


def bench(args: Any, server: Any, cpu: int | None) -> int:
    response_bench.configure_django(server.url)
    from django.core.cache import caches

    tier = caches[ALIAS].local_tier
    if tier is None or not tier.wait_serving(10):
        raise SystemExit("the local tier is not serving")
    started = time.perf_counter()
    per_round = whole_requests(args)
    django, ours = steps(args)
    duration = time.perf_counter() - started
    from django_creator_cache.backend import local_tier

    local_tier.shutdown_all()  # before the server stops

    floor_us = 1e6 / statistics.median(per_round["floor"])
    extras = [
        1e6 / hit - 1e6 / floor
        for hit, floor in zip(per_round["local tier hit"], per_round["floor"], strict=True)
    ]
    extra_us = statistics.median(extras)
    budget = floor_us / 0.9 - floor_us
    rows = [["Django's own, paid by any correct page cache", "", ""]]
    rows += [[f"  {name}", f"{us:.1f}", f"{us / budget:.0%}"] for name, us in django.items()]
    rows.append(["ours", "", ""])
    rows += [[f"  {name}", f"{us:.1f}", f"{us / budget:.0%}"] for name, us in ours.items()]
    for name, part in (
        ("Django's", django),
        ("ours", ours),
        ("a hit in a loop", {**django, **ours}),
    ):
        us = sum(part.values())
        rows.append([f"together, {name}", f"{us:.1f}", f"{us / budget:.0%}"])
    table = harness.markdown_table(["step of a local-tier hit", "us", "of the budget"], rows, "lrr")
    summary = (
        f"Floor {floor_us:.0f} us per request; the 0.9x goal leaves a hit {budget:.1f} us over "
        f"it. A local-tier hit took {extra_us:.1f} us over the floor "
        f"({floor_us / (floor_us + extra_us):.2f}x the floor), median over rounds."
    )
    print()
    print(summary)
    meta = harness.versions(("Django", "redis-py", "asgiref"), harness.server_version(server))
    return harness.finish(
        args,
        meta,
        {
            "floor_us": floor_us,
            "hit_extra_us": extra_us,
            "budget_us": budget,
            "django_us": django,
            "ours_us": ours,
        },
        pinned=cpu,
        method=f"steps: best of {args.rounds} repeats of {args.iterations} calls; whole "
        f"requests: {args.rounds} rounds of {args.slices} alternating slices.",
        timed=duration,
        tables=[table],
    )


def main(argv: list[str] | None = None) -> int:
    return harness.run_pinned(parse_args(argv), bench)


if __name__ == "__main__":
    sys.exit(main())
