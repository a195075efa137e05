"""What a cached page is: which requests share it, which responses may be stored, how.

Kept apart from the decorator so the rules read in one place: what varies
here, what makes a page personal in ``personal``, how a page is stored in
``entry`` (one blob, not a pickled ``HttpResponse``: any serializer holds it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.utils.http import urlencode
from django.utils.timezone import get_current_timezone_name
from django.utils.translation import get_language

from ..ttl import parse_ttl
from ..ttl import policy as ttl_policy
from . import entry, personal

HIT, MISS, SKIP = "HIT", "MISS", "SKIP"
# Stored instead of a page when the render that filled a miss could not be
# stored ("hit-for-pass"): the requests that waited for it, and those that come
# in the next moment, render on their own instead of queueing one by one.
PASS = "dcc:pass"
PASS_SECONDS = 1.0

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
    max_query_variants: int | None = None

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
    users: list[Any],
    args: Any,
    kwargs: Any,
) -> str | None:
    """``<prefix>:<view id>:<hash of what varies>``, or None: this request must not
    read or write the cache (so one user's page is never served to another).

    None for an authenticated visitor (``users``: every authenticated user the
    request carries, see ``personal.users``) unless ``vary_on_user``, for
    credentials we cannot see a user behind (an ``Authorization`` header, no
    user), and when ``key_func`` returns None. The hash covers scheme, host, path, the
    query (sorted), the ``vary_on_headers`` values (or ``key_func``'s value
    instead of all these), the active language and time zone, and the user.
    """
    if users and not options.vary_on_user:
        return None
    if not users and "HTTP_AUTHORIZATION" in request.META:
        return None
    if options.key_func is not None:
        made = options.key_func(request, *args, **kwargs)
        if made is None:
            return None
        parts = [str(made)]
    else:
        parts = [request.scheme or "", _host(request), request.path]
        parts.append(_query(request, options.vary_on_query))
        parts += [request.headers.get(name, "") for name in options.vary_on_headers]
    if settings.USE_I18N:
        parts.append(get_language() or "")
    if settings.USE_TZ:
        parts.append(get_current_timezone_name())
    if options.vary_on_user:
        who = personal.identity(users)
        if who is None:  # a user we cannot tell from another
            return None
        parts.append(who)
    text = "\x1f".join(parts).encode("utf-8", "surrogateescape")
    digest = hashlib.blake2b(text, digest_size=16).hexdigest()
    manager = getattr(cache, "keys_manager", None)
    if manager is not None:
        return str(manager.custom(options.prefix, view_id, digest))
    return f"{options.prefix}:{view_id}:{digest}"


# Hosts ``request.get_host()`` accepted, by (raw host, ALLOWED_HOSTS, DEBUG): a hit does not
# validate the same host again. Bounded; only accepted hosts are kept.
_HOSTS: set[tuple[str, tuple[str, ...], bool]] = set()
_MAX_HOSTS = 256


def _host(request: HttpRequest) -> str:
    """``request.get_host()`` (``DisallowedHost`` for a host not allowed), its validation
    remembered for the settings it was made under."""
    raw: str = request._get_raw_host()  # type: ignore[attr-defined]  # Django's own, stable
    seen = (raw, tuple(settings.ALLOWED_HOSTS), bool(settings.DEBUG))
    if seen in _HOSTS:
        return raw
    host = request.get_host()
    if host == raw:
        if len(_HOSTS) >= _MAX_HOSTS:
            _HOSTS.clear()
        _HOSTS.add(seen)
    return host


def _query(request: HttpRequest, vary: bool | frozenset[str]) -> str:
    """The query string in a canonical order (``?a=1&b=2`` is ``?b=2&a=1``), or the
    parameters named in ``vary`` only; repeated values keep their order."""
    if vary is False:
        return ""
    if not request.META.get("QUERY_STRING") and not request.__dict__.get("GET"):
        return ""  # no query (and request.GET not parsed, or set, with one): nothing to sort
    items = sorted(request.GET.lists())
    if vary is not True:
        items = [(name, values) for name, values in items if name in vary]
    return urlencode(items, doseq=True)


def variants_key(cache: BaseCache, options: PageOptions, view_id: str) -> str:
    """The counter of query-string variants stored for one view (``max_query_variants``):
    under the view's prefix, so ``invalidate_prefix`` drops it with the pages."""
    manager = getattr(cache, "keys_manager", None)
    if manager is not None:
        return str(manager.custom(options.prefix, view_id, "query-variants"))
    return f"{options.prefix}:{view_id}:query-variants"


def counts_variant(options: PageOptions, request: HttpRequest) -> bool:
    """Whether a page stored for ``request`` is a query-string variant that counts against
    ``max_query_variants`` (a cap is set, no ``key_func``, the key has a query part)."""
    if options.max_query_variants is None or options.key_func is not None:
        return False
    return bool(_query(request, options.vary_on_query))


def mark(
    response: HttpResponseBase,
    state: str,
    options: PageOptions,
    max_age: float | None = None,
    request: HttpRequest | None = None,
) -> HttpResponseBase:
    """Set ``X-Cache``; on a cached page also ``Cache-Control`` and ``Vary``.

    ``max-age`` is what is left of the entry's life, so a browser or proxy never
    keeps the page longer than we do; ``private`` when the page is per user, or
    when a middleware will add this visitor's cookie to it (``request``), so no
    shared cache downstream keeps that cookie.
    """
    response["X-Cache"] = state
    if state == SKIP:
        return response
    if options.vary_on_headers:
        patch_vary_headers(response, options.vary_on_headers)
    private = _private(options, request)
    if not response.has_header("Cache-Control"):
        response.headers["Cache-Control"] = _cache_control(private, max_age)
        return response
    control: dict[str, Any] = {"private": True} if private else {"public": True}
    if max_age is not None:
        control["max_age"] = max(int(max_age), 0)
    patch_cache_control(response, **control)
    return response


def hit(page: entry.Page, options: PageOptions, request: HttpRequest) -> HttpResponseBase:
    """A new response for a stored page, marked as ``mark(..., HIT, ...)`` would: in one
    go (headers given to the constructor) when nothing is to be merged into stored
    ``Cache-Control`` or ``Vary`` headers. Raises ``ValueError``/``TypeError`` for a
    status or header Django refuses."""
    if page.controlled or options.vary_on_headers:
        return mark(page.response(), HIT, options, page.remaining(), request)
    control = _cache_control(_private(options, request), page.remaining())
    return page.response({**page.headers, "X-Cache": HIT, "Cache-Control": control})


def _private(options: PageOptions, request: HttpRequest | None) -> bool:
    return options.vary_on_user or (request is not None and personal.cookie_coming(request))


def _cache_control(private: bool, max_age: float | None) -> str:
    """What ``patch_cache_control`` writes on a response without the header."""
    visibility = "private" if private else "public"
    return visibility if max_age is None else f"{visibility}, max-age={max(int(max_age), 0)}"
