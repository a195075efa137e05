"""``cache_response`` through Django's full request handling, on single, Sentinel and Cluster."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, RequestFactory
from django.utils.decorators import method_decorator
from django.views import View

from django_creator_cache.views_cache import cache_response, entry
from django_creator_cache.views_cache.core import PASS
from tests.conftest import Target
from tests.testapp import views
from tests.testapp.models import Campaign

# Commands servers get from each other and from the measuring itself, never from a hit.
BACKGROUND = frozenset({"hello", "info", "ping", "publish", "replconf"})


@pytest.fixture(autouse=True)
def _fresh_render_counts() -> None:
    views.RENDERS.clear()


def fetch(client: Client, url: str, **extra: Any) -> tuple[str, str]:
    """``(X-Cache, body)`` of a GET."""
    response = client.get(url, **extra)
    return response.headers.get("X-Cache", ""), response.content.decode()


def max_age(response: Any) -> int:
    directives = dict(
        part.strip().partition("=")[::2] for part in response["Cache-Control"].split(",")
    )
    return int(directives["max-age"])


# -- hit, miss and the headers ---------------------------------------------------------


def test_miss_stores_and_hit_serves_with_headers(cache: Any, client: Client) -> None:
    first = client.get("/page/")
    assert first["X-Cache"] == "MISS"
    assert "public" in first["Cache-Control"] and max_age(first) == 60
    second = client.get("/page/")
    assert second["X-Cache"] == "HIT"
    assert second.content == first.content == b"page render 1 query "
    assert second["Content-Type"] == first["Content-Type"]
    assert 59 <= max_age(second) <= 60
    assert views.RENDERS["page"] == 1


def test_max_age_on_a_hit_is_the_entry_remaining_life(cache: Any, client: Client) -> None:
    client.get("/page/")
    (key,) = cache.keys("views:page:*")
    page = entry.read(cache.get(key))
    assert page is not None
    stored_45_s_ago = entry.encode(page.response(), 60, text=False, stored_at=time.time() - 45)
    cache.set(key, stored_45_s_ago, 15)
    hit = client.get("/page/")
    assert hit["X-Cache"] == "HIT"
    assert 13 <= max_age(hit) <= 15


def test_query_order_does_not_matter_and_values_do(cache: Any, client: Client) -> None:
    assert fetch(client, "/page/?a=1&b=2") == ("MISS", "page render 1 query a=1&b=2")
    assert fetch(client, "/page/?b=2&a=1") == ("HIT", "page render 1 query a=1&b=2")
    assert fetch(client, "/page/?a=1&b=3")[0] == "MISS"
    assert fetch(client, "/page/")[0] == "MISS"


def test_vary_on_query_can_name_the_parameters_that_matter(cache: Any, client: Client) -> None:
    assert fetch(client, "/paged/?page=2&utm_source=x")[0] == "MISS"
    assert fetch(client, "/paged/?utm_source=y&page=2")[0] == "HIT"
    assert fetch(client, "/paged/?page=3")[0] == "MISS"
    assert views.RENDERS["paged"] == 2


def test_head_is_served_from_the_get_entry_and_never_fills_it(cache: Any, client: Client) -> None:
    head = client.head("/page/")
    assert head["X-Cache"] == "SKIP"
    assert fetch(client, "/page/")[0] == "MISS"  # the HEAD stored nothing
    head = client.head("/page/")
    assert head["X-Cache"] == "HIT" and head.content == b""
    assert views.RENDERS["page"] == 2


def test_other_methods_are_rendered_and_never_stored(cache: Any, client: Client) -> None:
    assert client.post("/page/")["X-Cache"] == "SKIP"
    assert client.put("/page/")["X-Cache"] == "SKIP"
    assert fetch(client, "/page/")[0] == "MISS"
    assert views.RENDERS["page"] == 3


def test_statuses_decide_what_is_stored(cache: Any, client: Client) -> None:
    assert [fetch(client, "/status/404/")[0] for _ in range(2)] == ["MISS", "HIT"]
    assert [fetch(client, "/status/301/")[0] for _ in range(2)] == ["MISS", "HIT"]
    assert [fetch(client, "/status/500/")[0] for _ in range(2)] == ["SKIP", "SKIP"]
    assert [fetch(client, "/missing/")[0] for _ in range(2)] == ["SKIP", "SKIP"]  # {200}
    assert views.RENDERS["missing"] == 2
    assert views.RENDERS["status-404"] == views.RENDERS["status-301"] == 1


def test_cookies_private_and_csrf_pages_are_never_stored(cache: Any, client: Client) -> None:
    for _ in range(2):
        cookie = client.get("/cookie/")
        assert cookie["X-Cache"] == "SKIP" and cookie.cookies["seen"].value == "1"
        private = client.get("/private/")
        assert private["X-Cache"] == "SKIP"
        assert private["Cache-Control"] == "private"  # the view's own, untouched
        assert client.get("/csrf/")["X-Cache"] == "SKIP"
    assert views.RENDERS["cookie"] == views.RENDERS["private"] == 2
    assert [key for key in cache.keys("views:*") if cache.get(key) != PASS] == []


def test_a_page_showing_flash_messages_is_not_stored(cache: Any, client: Client) -> None:
    client.post("/flash/add/")
    assert fetch(client, "/flash/") == ("SKIP", "flash render 1 [Campaign saved]")
    cache.invalidate_prefix("views:flash")  # the short PASS mark that render left
    assert fetch(client, "/flash/") == ("MISS", "flash render 2 []")
    assert fetch(client, "/flash/") == ("HIT", "flash render 2 []")


# -- users ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_authenticated_requests_neither_read_nor_write(cache: Any, client: Client) -> None:
    alice = Client()
    alice.force_login(User.objects.create_user("alice"))
    assert fetch(alice, "/anyone/") == ("SKIP", "hello alice")
    assert fetch(client, "/anyone/") == ("MISS", "hello anonymous")  # alice stored nothing
    assert fetch(alice, "/anyone/") == ("SKIP", "hello alice")  # nor read the anonymous page
    assert fetch(client, "/anyone/") == ("HIT", "hello anonymous")


def test_credentials_without_a_user_skip_the_cache(cache: Any, client: Client) -> None:
    assert fetch(client, "/page/", HTTP_AUTHORIZATION="Bearer abc")[0] == "SKIP"
    assert fetch(client, "/page/")[0] == "MISS"


@pytest.mark.django_db
def test_vary_on_user_keeps_one_private_page_per_user(cache: Any, client: Client) -> None:
    alice, bob = Client(), Client()
    alice.force_login(User.objects.create_user("alice"))
    bob.force_login(User.objects.create_user("bob"))
    first = alice.get("/mine/")
    assert first["X-Cache"] == "MISS" and "private" in first["Cache-Control"]
    assert "public" not in first["Cache-Control"]
    assert fetch(alice, "/mine/") == ("HIT", "mine alice 1")
    assert fetch(bob, "/mine/") == ("MISS", "mine bob 2")
    assert fetch(client, "/mine/") == ("MISS", "mine anonymous 3")
    assert fetch(bob, "/mine/") == ("HIT", "mine bob 2")
    assert fetch(client, "/mine/") == ("HIT", "mine anonymous 3")


def test_vary_on_headers(cache: Any, client: Client) -> None:
    english = client.get("/lang/", HTTP_ACCEPT_LANGUAGE="en")
    assert english["X-Cache"] == "MISS" and "Accept-Language" in english["Vary"]
    assert fetch(client, "/lang/", HTTP_ACCEPT_LANGUAGE="fr") == ("MISS", "lang fr 2")
    assert fetch(client, "/lang/", HTTP_ACCEPT_LANGUAGE="en") == ("HIT", "lang en 1")


# -- views of every kind -------------------------------------------------------------


def test_ttl_policy_and_default_view_id(cache: Any, client: Client, settings: Any) -> None:
    settings.CACHE_TTL_VIEW_TRACKING = 120  # read per request
    assert max_age(client.get("/policy/")) == 120
    assert fetch(client, "/default/")[0] == "MISS"
    assert cache.keys("views:tests.testapp.views.default_options:*") != []
    assert max_age(client.get("/default/")) <= cache.default_timeout


@pytest.mark.django_db(transaction=True)
def test_class_based_view_is_dropped_when_a_campaign_commits(cache: Any, client: Client) -> None:
    Campaign.objects.create(name="Spring")
    assert fetch(client, "/campaigns/") == ("MISS", "campaigns: Spring render 1")
    assert fetch(client, "/campaigns/") == ("HIT", "campaigns: Spring render 1")
    assert cache.keys("campaigns:tests.testapp.views.CampaignList.get:*") != []
    with transaction.atomic():
        Campaign.objects.create(name="Summer")
        assert fetch(client, "/campaigns/")[0] == "HIT"  # not committed yet
    assert fetch(client, "/campaigns/") == ("MISS", "campaigns: Spring, Summer render 2")


@pytest.mark.django_db(transaction=True)
def test_template_response_is_stored_after_it_renders(cache: Any, client: Client) -> None:
    assert fetch(client, "/dashboard/") == ("MISS", "dashboard: 0 campaigns, render 1\n")
    assert fetch(client, "/dashboard/") == ("HIT", "dashboard: 0 campaigns, render 1\n")
    Campaign.objects.create(name="Spring")  # its rule invalidates prefix "dashboard"
    assert fetch(client, "/dashboard/") == ("MISS", "dashboard: 1 campaigns, render 2\n")


def test_async_view(cache: Any) -> None:
    async def scenario() -> list[tuple[str, bytes]]:
        client = AsyncClient()
        responses = [await client.get("/async/") for _ in range(2)]
        return [(r["X-Cache"], r.content) for r in responses]

    assert asyncio.run(scenario()) == [
        ("MISS", b"async render 1 user None"),
        ("HIT", b"async render 1 user None"),
    ]


def test_misapplied_to_a_method_or_a_class_says_how_to_fix(cache: Any) -> None:
    class Direct(View):
        @cache_response(ttl=60)
        def get(self, request: HttpRequest) -> HttpResponse:
            return HttpResponse("x")

    with pytest.raises(TypeError, match="method_decorator"):
        Direct.as_view()(RequestFactory().get("/"))
    with pytest.raises(TypeError, match="method_decorator"):
        cache_response(ttl=60)(Direct)

    class Decorated(View):
        @method_decorator(cache_response(ttl=60))
        def get(self, request: HttpRequest) -> HttpResponse:
            return HttpResponse("x")

    assert Decorated.as_view()(RequestFactory().get("/"))["X-Cache"] == "MISS"
    qualname = f"{__name__}.{Decorated.__qualname__}.get"
    assert cache.keys(f"views:{qualname}:*") != []


def test_key_func_replaces_the_url_and_none_skips(cache: Any) -> None:
    @cache_response(ttl=60, name="keyed", key_func=lambda r: r.GET.get("k"))
    def keyed(request: HttpRequest) -> HttpResponse:
        return HttpResponse(request.path)

    factory = RequestFactory()
    assert keyed(factory.get("/one/?k=1"))["X-Cache"] == "MISS"
    hit = keyed(factory.get("/two/?k=1"))
    assert hit["X-Cache"] == "HIT" and hit.content == b"/one/"
    assert keyed(factory.get("/one/"))["X-Cache"] == "SKIP"


# -- invalidation --------------------------------------------------------------------


def test_prefix_invalidation_drops_pages(cache: Any, client: Client) -> None:
    client.get("/page/")
    client.get("/paged/")
    assert cache.invalidate_prefix("views:page") == 1
    assert fetch(client, "/page/")[0] == "MISS"
    assert fetch(client, "/paged/")[0] == "HIT"
    assert cache.invalidate_prefix("views") == 2
    assert fetch(client, "/paged/")[0] == "MISS"


@pytest.mark.django_db
def test_tag_invalidation_drops_pages(cache: Any, client: Client) -> None:
    spring, summer = Campaign.objects.create(name="Spring"), Campaign.objects.create(name="Summer")
    for campaign in (spring, summer):
        assert fetch(client, f"/campaigns/{campaign.pk}/")[0] == "MISS"
    assert cache.invalidate_tags(f"campaign:{spring.pk}") == 1
    assert fetch(client, f"/campaigns/{spring.pk}/") == ("MISS", "Spring render 2")
    assert fetch(client, f"/campaigns/{summer.pk}/") == ("HIT", "Summer render 1")


# -- cost and concurrency ------------------------------------------------------------


def commands(target: Target, action: Callable[[], object]) -> dict[str, int]:
    return {n: c for n, c in target.count_commands(action).items() if n not in BACKGROUND}


def test_a_hit_is_one_get_where_cache_page_costs_two(target: Target, client: Client) -> None:
    for _ in range(2):  # fill both, and open the connections
        client.get("/page/")
        client.get("/django-cache-page/")
    ours = commands(target, lambda: client.get("/page/"))
    django = commands(target, lambda: client.get("/django-cache-page/"))
    assert ours == {"get": 1}
    assert django == {"get": 2}  # cache_page: the header key, then the page
    assert views.RENDERS["page"] == views.RENDERS["django"] == 1


def _concurrently(url: str, threads: int) -> tuple[list[tuple[str, str]], float]:
    barrier = threading.Barrier(threads)
    results: list[tuple[str, str]] = []

    def worker() -> None:
        client = Client()
        barrier.wait()
        results.append(fetch(client, url))

    started = time.monotonic()
    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return results, time.monotonic() - started


def test_concurrent_misses_render_once(cache: Any) -> None:
    results, _ = _concurrently("/slow/", 8)
    assert views.RENDERS["slow"] == 1
    assert sorted(state for state, _ in results) == ["HIT"] * 7 + ["MISS"]
    assert {body for _, body in results} == {"slow render 1"}


def test_concurrent_misses_of_an_unstorable_page_do_not_queue(cache: Any) -> None:
    results, elapsed = _concurrently("/slow-cookie/", 4)
    assert [state for state, _ in results] == ["SKIP"] * 4
    assert views.RENDERS["slow-cookie"] == 4
    # One render, then the three waiters together: not four renders one after another.
    assert elapsed < 3 * views.SLOW_SECONDS


# -- other backends ------------------------------------------------------------------


def test_works_without_redis_untagged_and_unlocked(settings: Any, client: Client) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert [fetch(client, "/page/")[0] for _ in range(2)] == ["MISS", "HIT"]
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    assert [fetch(client, "/page/")[0] for _ in range(2)] == ["MISS", "MISS"]


# -- two users and an anonymous visitor never see each other's pages ---------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/mine/", "/anyone/"])
def test_no_visitor_is_served_another_visitors_page_whatever_the_order(
    cache: Any, url: str
) -> None:
    """Every arrival order of two logged-in users and an anonymous visitor, twice each:
    everyone gets a page rendered for them. With ``vary_on_user`` each has their own
    entry; without it the users neither read nor write, and the anonymous page is shared
    by anonymous visitors only."""
    import itertools

    visitors = {"anonymous": Client()}
    for name in ("alice", "bob"):
        visitors[name] = Client()
        visitors[name].force_login(User.objects.create_user(name))
    per_user = url == "/mine/"
    for order in itertools.permutations(visitors):
        cache.clear()
        for expected in ("MISS", "HIT"):
            for name in order:
                response = visitors[name].get(url)
                assert response.content.decode().split()[1] == name, (order, name)
                cached = per_user or name == "anonymous"
                assert response["X-Cache"] == (expected if cached else "SKIP"), (order, name)
        assert len(cache.keys(f"views:{url.strip('/')}:*")) == (3 if per_user else 1)


def test_async_views_keep_users_apart_too(cache: Any) -> None:
    """The async path reads the user with ``request.auser()``: the same separation."""
    from django.contrib.auth.models import AnonymousUser

    @cache_response(ttl=60, name="async-mine", vary_on_user=True)
    async def mine(request: HttpRequest) -> HttpResponse:
        return HttpResponse(f"mine {(await request.auser()).get_username() or 'anonymous'}")

    @cache_response(ttl=60, name="async-anyone")
    async def anyone(request: HttpRequest) -> HttpResponse:
        return HttpResponse(f"hello {(await request.auser()).get_username() or 'anonymous'}")

    visitors = {
        "alice": User(pk=1, username="alice"),
        "bob": User(pk=2, username="bob"),
        "anonymous": AnonymousUser(),
    }

    async def visit(view: Callable[..., Any], name: str) -> tuple[str, str]:
        request = RequestFactory().get("/")

        async def auser() -> Any:
            return visitors[name]

        request.auser = auser  # type: ignore[attr-defined]  # what AuthenticationMiddleware sets
        response = await view(request)
        return response["X-Cache"], response.content.decode()

    async def scenario() -> None:
        for order in (("alice", "anonymous", "bob"), ("anonymous", "bob", "alice")):
            cache.clear()
            for expected in ("MISS", "HIT"):
                for name in order:
                    assert await visit(mine, name) == (expected, f"mine {name}")
                    state = expected if name == "anonymous" else "SKIP"
                    assert await visit(anyone, name) == (state, f"hello {name}")

    asyncio.run(scenario())
