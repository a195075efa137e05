"""What a cached page is: which requests share it, which responses may be stored, how.

Kept apart from the decorator so the rules (what varies, what is never stored)
read in one place. A stored page is a plain tuple, not a pickled
``HttpResponse``: smaller, independent of Django's response internals, and a
value of any other shape reads as a miss.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.messages import get_messages
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.cache import get_max_age, patch_cache_control, patch_vary_headers
from django.utils.http import urlencode
from django.utils.timezone import get_current_timezone_name
from django.utils.translation import get_language

from ..ttl import parse_ttl
from ..ttl import policy as ttl_policy

HIT, MISS, SKIP = "HIT", "MISS", "SKIP"
# Stored instead of a page when the render that filled a miss could not be
# stored ("hit-for-pass"): the requests that waited for it, and those that come
# in the next moment, render on their own instead of queueing one by one.
PASS = "dcc:pass"
PASS_SECONDS = 1.0
_FORMAT = 1  # first item of a stored page; change it when the layout changes
_NEVER_STORE = frozenset({"private", "no-store", "no-cache"})
_COMMA = re.compile(r"\s*,\s*")  # between Cache-Control directives and Vary names

TagsLike = Iterable[str] | Callable[..., Iterable[str]]


@dataclass(frozen=True)
class PageOptions:
    """The options of one ``cache_response`` decorator (see its docstring)."""

    ttl: Any  # seconds, None (never expire) or DEFAULT_TIMEOUT (the cache's)
    policy: str | None
    prefix: str
    tags: TagsLike
    vary_on_user: bool
    vary_on_headers: tuple[str, ...]
    vary_on_query: bool | frozenset[str]
    key_func: Callable[..., Any] | None
    alias: str
    statuses: frozenset[int]

    def timeout(self, cache: BaseCache) -> float | None:
        """Seconds to keep a page (policies and the cache default read now)."""
        if self.policy is not None:
            return float(ttl_policy(self.policy))
        if self.ttl is DEFAULT_TIMEOUT:
            return parse_ttl(cache.default_timeout)
        return parse_ttl(self.ttl)

    def tags_for(self, request: HttpRequest, args: Any, kwargs: Any) -> list[str]:
        tags = self.tags(request, *args, **kwargs) if callable(self.tags) else self.tags
        return [str(tag) for tag in tags]


def page_key(
    cache: BaseCache,
    options: PageOptions,
    view_id: str,
    request: HttpRequest,
    user: Any,
    args: Any,
    kwargs: Any,
) -> str | None:
    """``<prefix>:<view id>:<hash of what varies>``, or None: this request must not
    read or write the cache (so one user's page is never served to another).

    None for an authenticated user unless ``vary_on_user``, for credentials we
    cannot see a user behind (an ``Authorization`` header, anonymous user), and
    when ``key_func`` returns None. The hash covers scheme, host, path, the
    query (sorted), the ``vary_on_headers`` values (or ``key_func``'s value
    instead of all these), the active language and time zone, and the user.
    """
    authenticated = user is not None and bool(user.is_authenticated)
    if authenticated and not options.vary_on_user:
        return None
    if not authenticated and "HTTP_AUTHORIZATION" in request.META:
        return None
    if options.key_func is not None:
        made = options.key_func(request, *args, **kwargs)
        if made is None:
            return None
        parts = [str(made)]
    else:
        parts = [request.scheme or "", request.get_host(), request.path]
        parts.append(_query(request, options.vary_on_query))
        parts += [request.headers.get(name, "") for name in options.vary_on_headers]
    if settings.USE_I18N:
        parts.append(get_language() or "")
    if settings.USE_TZ:
        parts.append(get_current_timezone_name())
    if options.vary_on_user:
        parts.append(str(user.pk) if authenticated else "")
    text = "\x1f".join(parts).encode("utf-8", "surrogateescape")
    digest = hashlib.blake2b(text, digest_size=16).hexdigest()
    manager = getattr(cache, "keys_manager", None)
    if manager is not None:
        return str(manager.custom(options.prefix, view_id, digest))
    return f"{options.prefix}:{view_id}:{digest}"


def _query(request: HttpRequest, vary: bool | frozenset[str]) -> str:
    """The query string in a canonical order (``?a=1&b=2`` is ``?b=2&a=1``), or the
    parameters named in ``vary`` only; repeated values keep their order."""
    if vary is False:
        return ""
    items = sorted(request.GET.lists())
    if vary is not True:
        items = [(name, values) for name, values in items if name in vary]
    return urlencode(items, doseq=True)


def storable(options: PageOptions, request: HttpRequest, response: HttpResponseBase) -> bool:
    """Whether ``response`` may be served to every request that shares its key.

    Not: a streaming response, a status not in ``statuses``, one that sets a
    cookie, says ``private``/``no-store``/``no-cache``/``max-age=0``, or varies
    on a header the key does not cover; nor a page that used the CSRF token or
    showed flash messages (both belong to one visitor).
    """
    if response.streaming or response.status_code not in options.statuses or response.cookies:
        return False
    if "Cache-Control" in response:
        directives = {
            d.split("=", 1)[0].strip().lower() for d in _COMMA.split(response["Cache-Control"])
        }
        if directives & _NEVER_STORE or get_max_age(response) == 0:
            return False
    if "Vary" in response:
        covered = {name.lower() for name in options.vary_on_headers}
        varies = {name.strip().lower() for name in _COMMA.split(response["Vary"])}
        if not varies <= covered:  # includes "*"
            return False
    if request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):  # get_token() was called
        return False
    messages = get_messages(request)  # iterating it marks it used, even when it is empty
    return not (getattr(messages, "used", False) and len(messages))


def to_entry(response: HttpResponse, ttl: float | None) -> tuple[Any, ...]:
    """What is stored for a page: status, headers and body, and when it expires."""
    return (
        _FORMAT,
        response.status_code,
        response.reason_phrase,
        tuple(response.items()),
        response.content,
        time.time(),
        ttl,
    )


def from_entry(value: Any) -> tuple[HttpResponse, float | None] | None:
    """The page stored as ``value`` and its remaining seconds (None: never expires),
    or None if ``value`` is not a stored page (a miss, ``PASS``, or foreign)."""
    if type(value) is not tuple or len(value) != 7 or value[0] != _FORMAT:
        return None
    _, status, reason, headers, content, stored_at, ttl = value
    response = HttpResponse(content, status=status, reason=reason, headers=dict(headers))
    return response, None if ttl is None else stored_at + ttl - time.time()


def mark(
    response: HttpResponseBase, state: str, options: PageOptions, max_age: float | None = None
) -> HttpResponseBase:
    """Set ``X-Cache``; on a cached page also ``Cache-Control`` and ``Vary``.

    ``max-age`` is what is left of the entry's life, so a browser or proxy never
    keeps the page longer than we do; ``private`` when the page is per user.
    """
    response["X-Cache"] = state
    if state == SKIP:
        return response
    if options.vary_on_headers:
        patch_vary_headers(response, options.vary_on_headers)
    control: dict[str, Any] = {"private": True} if options.vary_on_user else {"public": True}
    if max_age is not None:
        control["max_age"] = max(int(max_age), 0)
    patch_cache_control(response, **control)
    return response
