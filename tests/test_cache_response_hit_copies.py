"""A page hit served from the local tier reads the stored page once, yet every response is
its own.

The tier hands out the same stored value on every hit and the page read from it is
remembered (``entry.read_held``); these tests change one hit's response every way a view
or middleware could and check that no other hit, and no other visitor, sees it, and that
an invalidation still reaches the tier.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings

from django_creator_cache.views_cache import cache_response, core, entry
from django_creator_cache.views_cache.core import HIT
from tests.conftest import flush
from tests.redis_servers import RedisServer
from tests.test_cache_response_hit_path import options

ALIAS = "tiered_pages"
RENDERS: list[str] = []


@pytest.fixture
def tiered(redis_server: RedisServer) -> Iterator[Any]:
    """An alias with the local tier, serving before the first request."""
    backend = {
        "BACKEND": "django_creator_cache.backend.RedisCache",
        "LOCATION": redis_server.url,
        "OPTIONS": {"ALIAS": ALIAS, "LOCAL_TIER": {"MAX_STALENESS": 0.5}},
    }
    with override_settings(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        | {ALIAS: backend}
    ):
        cache = caches[ALIAS]
        flush(cache)
        assert cache.local_tier is not None and cache.local_tier.wait_serving(10)
        RENDERS.clear()
        yield cache
        flush(cache)


@cache_response(cache=ALIAS, ttl=60, name="shared")
def shared_page(request: HttpRequest) -> HttpResponse:
    RENDERS.append("shared")
    return HttpResponse(f"shared page {len(RENDERS)}", headers={"X-Page": "kept"})


@cache_response(cache=ALIAS, ttl=60, name="personal", vary_on_user=True)
def personal_page(request: HttpRequest) -> HttpResponse:
    RENDERS.append("personal")
    return HttpResponse(f"page of {request.user.username}")  # type: ignore[union-attr]


def anonymous() -> HttpRequest:
    return RequestFactory().get("/shared/")


def visitor(pk: int, username: str) -> HttpRequest:
    request = RequestFactory().get("/personal/")
    request.user = SimpleNamespace(pk=pk, username=username, is_authenticated=True)  # type: ignore[assignment]
    return request


def test_hits_from_the_tier_are_read_once_and_each_response_is_its_own(tiered: Any) -> None:
    assert shared_page(anonymous())["X-Cache"] == "MISS"
    assert shared_page(anonymous())["X-Cache"] == HIT  # from Redis, now kept in the tier
    local_before = tiered.runtime.counters.local_hits
    first, second = shared_page(anonymous()), shared_page(anonymous())
    assert tiered.runtime.counters.local_hits - local_before == 2  # both from the tier
    assert first["X-Cache"] == second["X-Cache"] == HIT
    assert first.headers is not second.headers
    assert first._container is not second._container  # type: ignore[attr-defined]

    # What a middleware or a later view could do to one visitor's response.
    first["X-Cache"] = "changed"
    first["Cache-Control"] = "no-store"
    first["X-Page"] = "changed"
    first["X-Added"] = "1"
    first.set_cookie("sessionid", "first visitor's secret")
    first.content = b"changed"
    first.write(b" and more")
    first.status_code = 500

    for hit in (second, shared_page(anonymous())):
        assert hit.status_code == 200
        assert hit.content == b"shared page 1"
        assert hit["X-Cache"] == HIT
        assert hit["X-Page"] == "kept"
        assert not hit.has_header("X-Added")
        assert hit["Cache-Control"].startswith("public, max-age=")
        assert not hit.cookies and not hit.has_header("Set-Cookie")
    assert RENDERS == ["shared"]


def test_each_visitor_gets_their_own_page_from_the_tier(tiered: Any) -> None:
    alice, bob = visitor(1, "alice"), visitor(2, "bob")
    for _ in range(3):
        for request, name in ((alice, "alice"), (bob, "bob")):
            response = personal_page(request)
            assert response.content == f"page of {name}".encode()
            assert response["Cache-Control"].startswith("private")
    assert RENDERS == ["personal", "personal"]  # one render each, then hits


def test_an_invalidation_reaches_the_remembered_page(tiered: Any) -> None:
    assert shared_page(anonymous())["X-Cache"] == "MISS"
    assert shared_page(anonymous()).content == b"shared page 1"
    tiered.invalidate_prefix("views")
    after = shared_page(anonymous())
    assert after["X-Cache"] == "MISS" and after.content == b"shared page 2"
    assert shared_page(anonymous()).content == b"shared page 2"


@pytest.mark.parametrize("view_control", [None, "max-age=10, must-revalidate"])
@pytest.mark.parametrize("vary_on_user", [False, True])
@pytest.mark.parametrize("vary_on_headers", [(), ("Accept-Language",)])
@pytest.mark.parametrize("cookie_coming", [False, True])
def test_a_hit_built_in_one_go_is_marked_as_mark_marks_it(
    view_control: str | None,
    vary_on_user: bool,
    vary_on_headers: tuple[str, ...],
    cookie_coming: bool,
) -> None:
    stored = HttpResponse(b"body", headers={"Vary": "Accept-Encoding"})
    if view_control is not None:
        stored["Cache-Control"] = view_control
    page = entry.read(entry.encode(stored, 60, text=False))
    assert page is not None
    request = RequestFactory().get("/")
    if cookie_coming:
        request.META["CSRF_COOKIE_NEEDS_UPDATE"] = True
    chosen = options(vary_on_user=vary_on_user, vary_on_headers=vary_on_headers)
    built = core.hit(page, chosen, request)
    marked = core.mark(page.response(), HIT, chosen, page.remaining(), request)
    assert dict(built.items()) == dict(marked.items())
    assert built.content == marked.content == b"body"
