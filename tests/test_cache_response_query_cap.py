"""Distinct query strings cannot grow one cached view's keyspace without bound.

``cache_response(max_query_variants=N)`` stores at most N pages whose key has a query
part per view and TTL window (counted in Redis, so across processes); past it such
pages are rendered and marked ``SKIP``, nothing is written. The counter lives under
the view's prefix: ``invalidate_prefix`` resets it with the pages. Pages without a
query part, and parameters ``vary_on_query`` leaves out, do not count.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from django_creator_cache.views_cache import cache_response
from django_creator_cache.views_cache.core import PASS

RENDERS: dict[str, int] = {}


def _view(name: str) -> Any:
    def view(request: HttpRequest) -> HttpResponse:
        RENDERS[name] = RENDERS.get(name, 0) + 1
        return HttpResponse(f"{name} {request.GET.urlencode()} {RENDERS[name]}")

    return view


capped = cache_response(ttl=60, prefix="capped", name="list", max_query_variants=3)(_view("capped"))
named = cache_response(
    ttl=60, prefix="named", name="list", vary_on_query=["page"], max_query_variants=1
)(_view("named"))
default = cache_response(ttl=60, prefix="dflt", name="list")(_view("default"))


def get(view: Any, query: str = "") -> tuple[str, str]:
    response = view(RequestFactory().get(f"/list/{query}"))
    return response["X-Cache"], response.content.decode()


def pages(cache: Any, prefix: str) -> list[str]:
    """Stored pages of a prefix (not the counter, not a short PASS mark, not a lock)."""
    found = []
    for key in cache.keys(f"{prefix}:*"):
        if key.endswith("query-variants") or ":lock" in key or "lock:" in key:
            continue
        if cache.get(key) != PASS:
            found.append(key)
    return found


@pytest.fixture(autouse=True)
def _fresh() -> None:
    RENDERS.clear()


def test_variants_past_the_cap_are_rendered_not_stored(cache: Any) -> None:
    for n in (1, 2, 3):
        assert get(capped, f"?p={n}")[0] == "MISS"
        assert get(capped, f"?p={n}")[0] == "HIT"
    for n in (4, 5, 6):
        assert get(capped, f"?p={n}")[0] == "SKIP"
        assert get(capped, f"?p={n}")[0] == "SKIP"  # rendered again: nothing was stored
    assert RENDERS["capped"] == 3 + 6
    assert len(pages(cache, "capped")) == 3
    # The page without a query part does not count and is still stored.
    assert get(capped)[0] == "MISS"
    assert get(capped)[0] == "HIT"
    assert len(pages(cache, "capped")) == 4


def test_invalidating_the_prefix_resets_the_count(cache: Any) -> None:
    for n in (1, 2, 3, 4):
        get(capped, f"?p={n}")
    assert get(capped, "?p=9")[0] == "SKIP"
    cache.invalidate_prefix("capped")
    assert get(capped, "?p=9")[0] == "MISS"
    assert get(capped, "?p=9")[0] == "HIT"


def test_parameters_left_out_of_the_key_do_not_count(cache: Any) -> None:
    assert get(named, "?utm_source=a")[0] == "MISS"  # no query part in the key: not counted
    for source in "bcdef":
        assert get(named, f"?utm_source={source}")[0] == "HIT"
    assert get(named, "?page=2")[0] == "MISS"  # the one variant allowed
    assert get(named, "?page=2&utm_source=z")[0] == "HIT"
    assert get(named, "?page=3")[0] == "SKIP"
    assert len(pages(cache, "named")) == 2


def test_there_is_a_cap_by_default(cache: Any) -> None:
    assert get(default, "?q=1")[0] == "MISS"
    (counter,) = [key for key in cache.keys("dflt:*") if key.endswith("query-variants")]
    assert cache.get(counter) == 1
    assert 0 < cache.ttl(counter) <= 60  # one TTL window


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True])
def test_the_cap_is_checked(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_query_variants"):
        cache_response(max_query_variants=bad)
