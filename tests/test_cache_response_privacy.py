"""No visitor is ever served another visitor's page or cookie: the matrix.

Every scenario of ``tests/testapp/privacy.py`` (something that makes a page belong
to one visitor, or nothing that does), as a sync and an async view, shared and
``vary_on_user``, through Django's whole stack: sessions (in Redis), CSRF,
authentication, a token middleware that sets ``request.user`` after
``AuthenticationMiddleware``, messages. Four visitors take turns twice: alice
(logged in by session), an anonymous visitor, bob (logged in by token), another
anonymous visitor; each has their own session, ``pref`` cookie and CSRF cookie.
Every response must show its own visitor's things and nothing of anyone else's,
and carry the expected ``X-Cache``. Between visits the short "hit-for-pass" marks
are dropped, so every visit decides again whether its page may be stored.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.cache import caches
from django.test import AsyncClient, Client

from django_creator_cache.sessions import SessionStore
from django_creator_cache.views_cache import entry
from django_creator_cache.views_cache.core import PASS
from tests.conftest import flush, single_entry
from tests.redis_servers import RedisServer
from tests.testapp import views
from tests.testapp.privacy import KINDS, SCENARIOS, VARIANTS

pytestmark = pytest.mark.django_db(transaction=True)  # async views read users in a thread

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tests.testapp.privacy.TokenUserMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
# Never stored, for anyone: replaying them would replay a cookie, a write, a token,
# a one-time message, or what the response itself forbids.
NEVER = frozenset(
    {
        "session-write", "cookie", "raw-cookie", "vary-star", "no-store", "no-cache",
        "s-maxage-0", "max-age-0", "csrf", "messages-show", "messages-count", "messages-add",
    }
)  # fmt: skip
# One visitor's: kept per user under vary_on_user, never shared.
PERSONAL = frozenset(
    {"session-read", "vary-cookie", "vary-authorization", "private", "template-session"}
)
# What each page shows of its visitor: the pref cookie, the session's cart, the user.
SHOWS_PREF = frozenset(
    set(NEVER - {"csrf", "messages-show", "messages-count"}) | {"vary-cookie", "private"}
)
SHOWS_PREF |= {"vary-authorization"}
SHOWS_CART = frozenset({"session-read", "template-session"})
SHOWS_NAME = frozenset({"user", "template-user"})
# Usernames no random token or session key can contain (they hold no "_").
ALICE, BOB = "alice_user", "bob_user"


@dataclass
class Visitor:
    name: str
    client: Any
    user: str | None
    headers: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)

    @property
    def shown_name(self) -> str:
        return self.user or "anonymous"


@pytest.fixture
def site(settings: Any, redis_server: RedisServer) -> Iterator[Any]:
    settings.CACHES = {"default": single_entry(redis_server)}
    settings.SESSION_ENGINE = "django_creator_cache.sessions"
    settings.MIDDLEWARE = MIDDLEWARE
    cache = caches["default"]
    flush(cache)
    views.RENDERS.clear()
    yield cache
    flush(cache)


def make_visitor(
    kind: str, name: str, login: str | None = None, token: str | None = None
) -> Visitor:
    """A visitor with their own session (a cart), pref cookie and CSRF cookie."""
    client: Any = Client() if kind == "sync" else AsyncClient()
    visitor = Visitor(name, client, login or token)
    if login is not None:
        client.force_login(User.objects.get(username=login))
        session = SessionStore(client.cookies[django_settings.SESSION_COOKIE_NAME].value)
    else:
        session = SessionStore()
    pref = f"pref{name}{secrets.token_hex(6)}"
    session["cart"] = f"cart{name}{secrets.token_hex(6)}"
    session.save()
    csrf = (f"csrf{name}" + secrets.token_hex(16))[:32]
    client.cookies[django_settings.SESSION_COOKIE_NAME] = session.session_key
    client.cookies["pref"] = pref
    client.cookies[django_settings.CSRF_COOKIE_NAME] = csrf
    visitor.secrets = {
        "pref": pref,
        "cart": session["cart"],
        "session": str(session.session_key),
        "csrf": csrf,
    }
    if visitor.user is not None:
        visitor.secrets["user"] = visitor.user
    if token is not None:
        visitor.headers["X-Api-Key"] = token
    return visitor


def drop_pass_marks(cache: Any) -> None:
    for key in cache.keys("views:privacy*"):
        if cache.get(key) == PASS:
            cache.delete(key)


Step = tuple[Visitor, str]


def run(kind: str, cache: Any, steps: list[Step], with_message: bool) -> list[Any]:
    """GET each step's URL as its visitor (queueing a message first if asked), in order."""

    def sync_steps() -> list[Any]:
        responses = []
        for visitor, url in steps:
            if with_message:
                visitor.client.post("/privacy/add-message/", headers=visitor.headers)
            responses.append(visitor.client.get(url, headers=visitor.headers))
            drop_pass_marks(cache)
        return responses

    async def async_steps() -> list[Any]:
        responses = []
        for visitor, url in steps:
            if with_message:
                await visitor.client.post("/privacy/add-message/", headers=visitor.headers)
            responses.append(await visitor.client.get(url, headers=visitor.headers))
            drop_pass_marks(cache)
        return responses

    return sync_steps() if kind == "sync" else asyncio.run(async_steps())


def expected_state(scenario: str, variant: str, visitor: Visitor, first_of_its_key: bool) -> str:
    cached = "MISS" if first_of_its_key else "HIT"
    if scenario in NEVER:
        return "SKIP"
    if visitor.user is not None:  # a user: their own entry, or no cache at all
        return cached if variant == "mine" else "SKIP"
    return "SKIP" if scenario in PERSONAL else cached  # anonymous visitors share one entry


def own_thing(scenario: str, visitor: Visitor) -> str | None:
    if scenario in SHOWS_PREF:
        return visitor.secrets["pref"]
    if scenario == "messages-show":
        return f"note-{visitor.secrets['pref']}"
    if scenario == "messages-count":
        return " new"  # counted, not shown: they stay queued, the count grows
    if scenario in SHOWS_CART:
        return visitor.secrets["cart"]
    if scenario in SHOWS_NAME:
        return visitor.shown_name
    return None


def everything_sent(response: Any) -> str:
    headers = "\n".join(f"{k}: {v}" for k, v in response.items())
    return f"{response.content.decode()}\n{headers}\n{response.cookies.output()}"


def test_the_scenarios_are_all_classified() -> None:
    assert set(SCENARIOS) == NEVER | PERSONAL | {"plain", "user", "template-user"}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", KINDS)
def test_no_visitor_gets_another_visitors_page_or_cookie(
    site: Any, kind: str, variant: str, scenario: str
) -> None:
    User.objects.create_user(ALICE)
    User.objects.create_user(BOB)
    alice = make_visitor(kind, "alice", login=ALICE)
    anon1 = make_visitor(kind, "anonone")
    bob = make_visitor(kind, "bob", token=BOB)
    anon2 = make_visitor(kind, "anontwo")
    visitors = [alice, anon1, bob, anon2]
    url = f"/privacy/{kind}/{variant}/{scenario}/"
    with_message = scenario in ("messages-show", "messages-count")
    responses = run(kind, site, [(v, url) for v in visitors * 2], with_message)

    seen_keys: set[str | None] = set()
    for turn, (visitor, response) in enumerate(zip(visitors * 2, responses, strict=True)):
        where = (turn, visitor.name)
        assert response.status_code == 200, where
        shared_key = None if visitor.user else "anonymous"
        key = visitor.name if visitor.user else shared_key
        state = expected_state(scenario, variant, visitor, key not in seen_keys)
        seen_keys.add(key)
        assert response["X-Cache"] == state, where
        sent = everything_sent(response)
        mine = own_thing(scenario, visitor)
        if mine is not None:
            assert mine in response.content.decode(), where
        for other in visitors:
            if other is not visitor:
                for what, secret in other.secrets.items():
                    assert secret not in sent, (where, other.name, what)

    pages = [entry.read(site.get(key)) for key in site.keys("views:privacy*")]
    if scenario in NEVER:
        assert pages == []
    for page in pages:
        assert page is not None and not page.response().has_header("Set-Cookie")
        assert not page.response().cookies


@pytest.mark.parametrize("kind", KINDS)
def test_a_token_user_on_an_async_or_sync_view_is_not_stored_as_the_anonymous_page(
    site: Any, kind: str
) -> None:
    """The reported leak: bob logged in by a token middleware (``request.user``), the
    session's user anonymous: his page must not become everyone's."""
    User.objects.create_user(BOB)
    bob = make_visitor(kind, "bob", token=BOB)
    anon = make_visitor(kind, "anon")
    url = f"/privacy/{kind}/shared/user/"
    first, second = run(kind, site, [(bob, url), (anon, url)], with_message=False)
    assert (first["X-Cache"], second["X-Cache"]) == ("SKIP", "MISS")
    assert f"shows {BOB}" in first.content.decode()
    assert "shows anonymous" in second.content.decode()


@pytest.mark.parametrize("kind", KINDS)
def test_a_shared_page_that_middleware_adds_a_cookie_to_is_private_downstream(
    site: Any, settings: Any, kind: str
) -> None:
    """``SESSION_SAVE_EVERY_REQUEST``: every response sets the visitor's session cookie. The
    page is still shared here, but says ``private`` so no proxy keeps it with that cookie."""
    settings.SESSION_SAVE_EVERY_REQUEST = True
    first, second = make_visitor(kind, "first"), make_visitor(kind, "second")
    url = f"/privacy/{kind}/shared/plain/"
    responses = run(kind, site, [(first, url), (second, url)], with_message=False)
    assert [r["X-Cache"] for r in responses] == ["MISS", "HIT"]
    for visitor, response in zip((first, second), responses, strict=True):
        cookie = response.cookies[django_settings.SESSION_COOKIE_NAME].value
        assert cookie == visitor.secrets["session"]
        assert "private" in response["Cache-Control"]
        assert "public" not in response["Cache-Control"]
    settings.SESSION_SAVE_EVERY_REQUEST = False
    (third,) = run(kind, site, [(make_visitor(kind, "third"), url)], with_message=False)
    assert third["X-Cache"] == "HIT" and "public" in third["Cache-Control"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_view_writing_a_session_a_middleware_wrote_first_is_not_stored(
    site: Any, settings: Any, kind: str
) -> None:
    """A middleware wrote the session before the view: the view's own write is not
    mistaken for a read (its page kept per user and its write replayed on every hit);
    a view that leaves the session alone is still kept per user."""
    settings.MIDDLEWARE = [*MIDDLEWARE, "tests.testapp.privacy.LastSeenMiddleware"]
    User.objects.create_user(ALICE)
    alice = make_visitor(kind, "alice", login=ALICE)
    writes = f"/privacy/{kind}/mine/session-write/"
    reads_user = f"/privacy/{kind}/mine/user/"
    steps = [(alice, writes), (alice, writes), (alice, reads_user), (alice, reads_user)]
    responses = run(kind, site, steps, with_message=False)
    assert [r["X-Cache"] for r in responses] == ["SKIP", "SKIP", "MISS", "HIT"]


def test_accounts_of_two_models_with_one_primary_key_are_told_apart() -> None:
    """A token middleware's service account and a ``User`` may share a pk: their pages
    and their places among a request's users are their own."""
    from types import SimpleNamespace

    from django_creator_cache.views_cache import personal

    user = User(pk=1, username="alice")
    service = SimpleNamespace(is_authenticated=True, pk=1, get_username=lambda: "svc")
    assert personal.identity([user]) != personal.identity([service])
    assert personal.identity([user]) == personal.identity([User(pk=1, username="alice")])
    found: list[Any] = []
    for account in (user, service):
        personal._add(found, account)
    assert found == [user, service]


def test_users_without_a_primary_key_are_told_apart_by_name_or_not_cached() -> None:
    """A token middleware's user object need not be a model: its username keys the page;
    with neither a pk nor a name, no per-user key can be built and the cache is skipped."""
    from types import SimpleNamespace

    from django_creator_cache.views_cache import personal

    def api_user(name: str) -> Any:
        return SimpleNamespace(is_authenticated=True, pk=None, get_username=lambda: name)

    first, second = api_user("first"), api_user("second")
    assert personal.identity([first]) != personal.identity([second])
    assert personal.identity([first]) == personal.identity([api_user("first")])
    assert personal.identity([api_user("")]) is None
    found: list[Any] = []
    for user in (first, api_user("first"), second):
        personal._add(found, user)
    assert found == [first, second]
