"""The shortcuts of a page hit give what the long way gives.

A hit writes ``Cache-Control`` itself (what ``patch_cache_control`` would write), remembers
which hosts ``get_host()`` accepted (for the settings it accepted them under), and knows an
anonymous visitor without a session without loading one; none of these may change what a
visitor gets.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import DisallowedHost
from django.http import HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.utils.cache import patch_cache_control

from django_creator_cache.views_cache import core
from django_creator_cache.views_cache.core import HIT, PageOptions


def options(**changes: Any) -> PageOptions:
    base: dict[str, Any] = {
        "ttl": 60.0,
        "policy": None,
        "prefix": "views",
        "tags": (),
        "vary_on_user": False,
        "vary_on_headers": (),
        "vary_on_query": True,
        "key_func": None,
        "alias": "default",
        "statuses": frozenset({200}),
    }
    return PageOptions(**{**base, **changes})


@pytest.mark.parametrize("vary_on_user", [False, True])
@pytest.mark.parametrize("max_age", [None, 0, 42.7, -3])
def test_cache_control_is_what_patch_cache_control_writes(
    vary_on_user: bool, max_age: float | None
) -> None:
    marked = core.mark(HttpResponse(), HIT, options(vary_on_user=vary_on_user), max_age)
    expected = HttpResponse()
    control: dict[str, Any] = {"private": True} if vary_on_user else {"public": True}
    if max_age is not None:
        control["max_age"] = max(int(max_age), 0)
    patch_cache_control(expected, **control)
    assert marked["Cache-Control"] == expected["Cache-Control"]


def test_a_view_s_own_cache_control_is_still_merged() -> None:
    response = HttpResponse()
    response["Cache-Control"] = "max-age=10, must-revalidate"
    core.mark(response, HIT, options(), 60)
    parts = {p.strip() for p in response["Cache-Control"].split(",")}
    assert parts == {"public", "max-age=10", "must-revalidate"}


def test_hosts_are_validated_under_the_settings_of_the_moment() -> None:
    factory = RequestFactory()
    with override_settings(ALLOWED_HOSTS=["good.example"]):
        request = factory.get("/", HTTP_HOST="good.example")
        assert core._host(request) == "good.example"
        assert core._host(request) == "good.example"  # remembered
        with pytest.raises(DisallowedHost):
            core._host(factory.get("/", HTTP_HOST="evil.example"))
    # Accepted before, not under these settings:
    with override_settings(ALLOWED_HOSTS=["other.example"]), pytest.raises(DisallowedHost):
        core._host(factory.get("/", HTTP_HOST="good.example"))


def test_a_disallowed_host_gets_no_page(cache: Any, client: Client) -> None:
    assert client.get("/page/")["X-Cache"] == "MISS"
    assert client.get("/page/")["X-Cache"] == "HIT"
    assert client.get("/page/", HTTP_HOST="evil.example").status_code == 400


def test_an_anonymous_hit_varies_on_cookie_and_leaves_the_user_anonymous(
    cache: Any, client: Client
) -> None:
    client.get("/page/")
    hit = client.get("/page/")
    assert hit["X-Cache"] == HIT
    assert "Cookie" in hit["Vary"]  # SessionMiddleware: the session was consulted
    request = hit.wsgi_request
    assert request.user.is_authenticated is False
    assert request.user.is_anonymous
