"""Views for the privacy matrix (tests/test_cache_response_privacy.py).

Every scenario exists as a sync and an async view, each decorated twice: shared
(``vary_on_user=False``) and per user (``vary_on_user=True``). Each page shows
what belongs to its visitor in the way the scenario names (their session, their
``pref`` cookie, their CSRF token, their messages, their user), and how many
times it was rendered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.csrf import get_token
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.utils.deprecation import MiddlewareMixin
from django.utils.functional import SimpleLazyObject

from django_creator_cache.views_cache import cache_response

from .views import rendered


class TokenUserMiddleware(MiddlewareMixin):
    """``X-Api-Key: <username>`` logs that user in for this request, after
    ``AuthenticationMiddleware`` (as API-key and token middlewares do). Not the
    ``Authorization`` header, which ``cache_response`` refuses on its own."""

    def process_request(self, request: HttpRequest) -> None:
        name = request.headers.get("X-Api-Key")
        if name:
            found = User.objects.filter(username=name).first()
            if found is not None:
                request.user = found


class LastSeenMiddleware(MiddlewareMixin):
    """Writes the session of every logged-in visitor before the view (activity tracking)."""

    def process_request(self, request: HttpRequest) -> None:
        if request.user.is_authenticated:
            request.session["last_seen"] = "now"


def _pref(request: HttpRequest) -> str:
    return request.COOKIES.get("pref", "-")


def _page(scenario: str, request: HttpRequest, shows: str) -> HttpResponse:
    return HttpResponse(f"{scenario} render {rendered(f'privacy-{scenario}')} shows {shows}")


# Scenarios decided by the response alone: (what the page shows, how it is shaped).
Shape = Callable[[HttpRequest, HttpResponse], None]


def _set_cookie(request: HttpRequest, response: HttpResponse) -> None:
    response.set_cookie("echo", _pref(request))


def _raw_cookie(request: HttpRequest, response: HttpResponse) -> None:
    response.headers["Set-Cookie"] = f"echo={_pref(request)}; Path=/"


def _vary(*names: str) -> Shape:
    return lambda request, response: patch_vary_headers(response, names)


def _vary_star(request: HttpRequest, response: HttpResponse) -> None:
    response["Vary"] = "*"


def _control(**directives: Any) -> Shape:
    return lambda request, response: patch_cache_control(response, **directives)


SHAPES: dict[str, Shape] = {
    "cookie": _set_cookie,
    "raw-cookie": _raw_cookie,
    "vary-cookie": _vary("Cookie"),
    "vary-authorization": _vary("Authorization"),
    "vary-star": _vary_star,
    "private": _control(private=True),
    "no-store": _control(no_store=True),
    "no-cache": _control(no_cache=True),
    "s-maxage-0": _control(s_maxage=0),
    "max-age-0": _control(max_age=0),
}


def _shaped_views(scenario: str, shape: Shape) -> tuple[Callable[..., Any], Callable[..., Any]]:
    def sync(request: HttpRequest) -> HttpResponse:
        response = _page(scenario, request, _pref(request))
        shape(request, response)
        return response

    async def asynchronous(request: HttpRequest) -> HttpResponse:
        return sync(request)

    return sync, asynchronous


# Scenarios decided by what the view read or wrote while it ran.


def _who_sync(request: HttpRequest) -> str:
    return request.user.get_username() or "anonymous"


async def _who_async(request: HttpRequest) -> str:
    user = request.user
    if isinstance(user, SimpleLazyObject):  # the session's user: ask it the async way
        user = await request.auser()  # type: ignore[attr-defined]
    return user.get_username() or "anonymous"


def _user_sync(request: HttpRequest) -> HttpResponse:
    return _page("user", request, _who_sync(request))


async def _user_async(request: HttpRequest) -> HttpResponse:
    return _page("user", request, await _who_async(request))


def _session_read_sync(request: HttpRequest) -> HttpResponse:
    return _page("session-read", request, str(request.session.get("cart", "empty")))


async def _session_read_async(request: HttpRequest) -> HttpResponse:
    return _page("session-read", request, str(await request.session.aget("cart", "empty")))


def _session_write_sync(request: HttpRequest) -> HttpResponse:
    request.session["last_pref"] = _pref(request)
    return _page("session-write", request, _pref(request))


async def _session_write_async(request: HttpRequest) -> HttpResponse:
    await request.session.aset("last_pref", _pref(request))
    return _page("session-write", request, _pref(request))


def _csrf_sync(request: HttpRequest) -> HttpResponse:
    return _page("csrf", request, get_token(request))


async def _csrf_async(request: HttpRequest) -> HttpResponse:
    return _page("csrf", request, get_token(request))


def _messages_shown(request: HttpRequest) -> HttpResponse:
    shown = ",".join(str(m) for m in messages.get_messages(request)) or "none"
    return _page("messages-show", request, shown)


async def _messages_shown_async(request: HttpRequest) -> HttpResponse:
    return _messages_shown(request)


def _messages_counted(request: HttpRequest) -> HttpResponse:
    """A notification badge: the messages counted, never listed (not marked used)."""
    return _page("messages-count", request, f"{len(messages.get_messages(request))} new")


async def _messages_counted_async(request: HttpRequest) -> HttpResponse:
    return _messages_counted(request)


def _messages_added(request: HttpRequest) -> HttpResponse:
    messages.info(request, f"note-{_pref(request)}")
    return _page("messages-add", request, _pref(request))


async def _messages_added_async(request: HttpRequest) -> HttpResponse:
    return _messages_added(request)


def _template_session(request: HttpRequest) -> TemplateResponse:
    context = {"render": rendered("privacy-template-session")}
    return TemplateResponse(request, "testapp/session_cart.html", context)


async def _template_session_async(request: HttpRequest) -> TemplateResponse:
    return _template_session(request)


def _template_anonymous(request: HttpRequest) -> TemplateResponse:
    """Uses the ``user`` and ``messages`` context processors, as a base template does:
    for anonymous visitors with no messages, a page everyone may share."""
    context = {"render": rendered("privacy-template-user")}
    return TemplateResponse(request, "testapp/user_hello.html", context)


async def _template_anonymous_async(request: HttpRequest) -> TemplateResponse:
    return _template_anonymous(request)


def _plain(request: HttpRequest) -> HttpResponse:
    return _page("plain", request, "nothing personal")


async def _plain_async(request: HttpRequest) -> HttpResponse:
    return _plain(request)


View = Callable[..., HttpResponseBase]
AView = Callable[..., Awaitable[HttpResponseBase]]
SCENARIOS: dict[str, tuple[View, AView]] = {
    "plain": (_plain, _plain_async),
    "user": (_user_sync, _user_async),
    "session-read": (_session_read_sync, _session_read_async),
    "session-write": (_session_write_sync, _session_write_async),
    "csrf": (_csrf_sync, _csrf_async),
    "messages-show": (_messages_shown, _messages_shown_async),
    "messages-count": (_messages_counted, _messages_counted_async),
    "messages-add": (_messages_added, _messages_added_async),
    "template-session": (_template_session, _template_session_async),
    "template-user": (_template_anonymous, _template_anonymous_async),
    **{name: _shaped_views(name, shape) for name, shape in SHAPES.items()},
}
KINDS = ("sync", "async")
VARIANTS = ("shared", "mine")


def add_message(request: HttpRequest) -> HttpResponse:
    """Not cached: queues a flash message for the visitor's next page."""
    messages.info(request, f"note-{_pref(request)}")
    return HttpResponse("queued")


def _decorated(kind: str, variant: str, scenario: str) -> Callable[..., Any]:
    view = SCENARIOS[scenario][KINDS.index(kind)]
    name = f"privacy-{kind}-{variant}-{scenario}"
    return cache_response(ttl=60, name=name, vary_on_user=variant == "mine")(view)


urlpatterns = [
    path("privacy/add-message/", add_message),
    *(
        path(f"privacy/{kind}/{variant}/{scenario}/", _decorated(kind, variant, scenario))
        for kind in KINDS
        for variant in VARIANTS
        for scenario in SCENARIOS
    ),
]
