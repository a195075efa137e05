"""``cache_response``: whole responses of function and class-based views, sync and async.

A hit is one ``GET`` and nothing else (Django's ``cache_page`` reads a header
key, then the page). A miss is filled once for everyone who misses the same
page at that moment: the first takes the page's ``ComputeLock`` (the one
single-flight ``get_or_set`` uses) and renders, the others poll for the page.
A render that may not be stored leaves a short ``PASS`` mark instead, so the
waiters render on their own at once rather than queue behind the lock.

Async views take the same flow (written once, ``sync_async``) on the cache's
native async methods (redis.asyncio in the request's event loop,
``asyncio.sleep`` while waiting): no thread, and the view's coroutine is awaited
where it was called.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, cast, overload

from asgiref.sync import iscoroutinefunction
from django.core.cache import BaseCache, caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from .. import conf, sync_async
from ..backend.cache import RedisCache
from ..cache_aside import ComputeLock
from ..exceptions import CacheUnavailable
from ..sync_async import Both, Flow
from ..ttl import TTLLike, check_policy, parse_ttl
from . import core, entry, personal
from .core import MISS, PASS, PASS_SECONDS, SKIP, PageOptions, TagsLike

V = TypeVar("V", bound=Callable[..., Any])
Render = Callable[[], HttpResponseBase]
ARender = Callable[[], Awaitable[HttpResponseBase]]

_SAFE_METHODS = frozenset({"GET", "HEAD"})
# Waiters poll after 5 ms, then 1.5 times longer each time, at most every 50 ms.
_FIRST_POLL = 0.005
_MAX_POLL = 0.05
_BACKOFF = 1.5
# Pages with a query part stored per view and TTL window, unless the decorator says otherwise.
MAX_QUERY_VARIANTS = 1000


@overload
def cache_response(view: V, /) -> V: ...


@overload
def cache_response(
    view: None = None,
    /,
    *,
    ttl: TTLLike | object = ...,
    policy: str | None = ...,
    prefix: str = ...,
    name: str | None = ...,
    tags: TagsLike = ...,
    vary_on_user: bool = ...,
    vary_on_headers: Iterable[str] = ...,
    vary_on_query: bool | Iterable[str] = ...,
    key_func: Callable[..., Any] | None = ...,
    cache: str = ...,
    statuses: Iterable[int] = ...,
    max_query_variants: int | None = ...,
) -> Callable[[V], V]: ...


def cache_response(
    view: V | None = None,
    /,
    *,
    ttl: TTLLike | object = DEFAULT_TIMEOUT,
    policy: str | None = None,
    prefix: str = "views",
    name: str | None = None,
    tags: TagsLike = (),
    vary_on_user: bool = False,
    vary_on_headers: Iterable[str] = (),
    vary_on_query: bool | Iterable[str] = True,
    key_func: Callable[..., Any] | None = None,
    cache: str = "default",
    statuses: Iterable[int] = (200,),
    max_query_variants: int | None = MAX_QUERY_VARIANTS,
) -> V | Callable[[V], V]:
    """Cache a view's whole response; ``X-Cache`` says ``HIT``, ``MISS`` (rendered and
    stored) or ``SKIP`` (rendered, not stored).

    ``ttl`` (seconds, ``"15m"``, ``timedelta``, ``None`` = no expiry) or ``policy``
    (a TTL policy name); neither: the cache's default timeout. Entries are
    ``<prefix>:<name>:<hash>``, ``name`` defaulting to the view's dotted path, so
    ``invalidate_prefix(prefix)`` or ``invalidate_prefix(f"{prefix}:{name}")``
    drops them. ``tags``: strings, or a function ``(request, *args, **kwargs)``
    returning them. ``vary_on_user``: one entry per user (``private``);
    without it, requests of authenticated users (``request.user`` or the
    session's) neither read nor write the cache. A page the view made personal
    (session read, ``private``, ``Vary: Cookie``) is kept only under a user's own
    key; one that sets a cookie, writes the session, uses the CSRF token or
    messages, or forbids caching is never stored (``personal.verdict``).
    ``vary_on_headers``: request headers whose values vary the page.
    ``vary_on_query``: the whole query string (sorted; default), ``False``, or the
    names of the parameters that matter. ``key_func(request, *args, **kwargs)``:
    replaces URL, query and headers in the key; returning None skips the cache.
    ``cache``: the ``CACHES`` alias. ``statuses``: response codes that are stored.
    ``max_query_variants``: at most this many pages whose key has a query part are
    stored per view and TTL window (so distinct query strings cannot grow the keyspace
    and the invalidation index without bound); past it such pages are rendered, not
    stored (``SKIP``). Counted in Redis per view, reset with the view's prefix
    (``invalidate_prefix``) or after one TTL; ``None``: no cap. Pages without a query
    part (or with ``key_func``) are not counted.
    """
    if policy is not None and ttl is not DEFAULT_TIMEOUT:
        raise TypeError("cache_response takes ttl or policy, not both")
    if policy is not None:
        check_policy(policy, "cache_response")
    seconds = ttl if ttl is DEFAULT_TIMEOUT else parse_ttl(cast(TTLLike, ttl))
    if isinstance(seconds, float) and seconds <= 0:
        raise ValueError(f"cache_response: ttl must be positive or None, got {ttl!r}")
    if not prefix:
        raise ValueError("cache_response: prefix must not be empty")
    if max_query_variants is not None and (
        isinstance(max_query_variants, bool)
        or not isinstance(max_query_variants, int)
        or max_query_variants < 0
    ):
        raise ValueError(
            "cache_response: max_query_variants must be a non-negative int or None, "
            f"got {max_query_variants!r}"
        )
    options = PageOptions(
        ttl=seconds,
        policy=policy,
        prefix=prefix,
        tags=(tags,) if isinstance(tags, str) else tags if callable(tags) else tuple(tags),
        vary_on_user=vary_on_user,
        vary_on_headers=tuple(vary_on_headers),
        vary_on_query=vary_on_query
        if isinstance(vary_on_query, bool)
        else frozenset((vary_on_query,) if isinstance(vary_on_query, str) else vary_on_query),
        key_func=key_func,
        alias=cache,
        statuses=frozenset(statuses),
        max_query_variants=max_query_variants,
    )

    def decorate(func: V) -> V:
        if isinstance(func, type):
            raise TypeError(
                "cache_response decorates view functions: use "
                "method_decorator(cache_response(...), name='get') on a class-based view, "
                "or wrap MyView.as_view()"
            )
        view_id = name or _view_id(func)
        if iscoroutinefunction(func):

            async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                _check_request(request)
                safe = request.method in _SAFE_METHODS
                users = await personal.ausers(request) if safe else []
                render = functools.partial(func, request, *args, **kwargs)
                return await arespond(options, view_id, request, users, render, args, kwargs)

            return cast(V, functools.wraps(func)(async_view))

        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            _check_request(request)
            render = functools.partial(func, request, *args, **kwargs)
            users = personal.users(request) if request.method in _SAFE_METHODS else []
            return respond(options, view_id, request, users, render, args, kwargs)

        return cast(V, functools.wraps(func)(sync_view))

    if view is None:
        return decorate
    if not callable(view):
        raise TypeError("cache_response takes keyword options: @cache_response(ttl=60)")
    return decorate(view)


def respond(
    options: PageOptions,
    view_id: str,
    request: HttpRequest,
    users: list[Any],
    render: Render,
    args: Any,
    kwargs: Any,
) -> HttpResponseBase:
    """The response to ``request``: from the cache, or rendered (and stored if it may be).

    A hit is served straight from here (the key, one ``get``, the page); only a miss
    or a skip enters the flow shared with async views.
    """
    cache = caches[options.alias]
    key = None
    if request.method in _SAFE_METHODS:
        key = core.page_key(cache, options, view_id, request, users, args, kwargs)
    if key is None:
        return core.mark(render(), SKIP, options)
    value = cache.get(key)
    hit = _served(cache, key, value, options, request)
    if hit is not None:
        return hit
    flow = _after_read(cache, key, value, options, view_id, request, users, render, args, kwargs)
    return sync_async.run(flow)


async def arespond(
    options: PageOptions,
    view_id: str,
    request: HttpRequest,
    users: list[Any],
    render: ARender,
    args: Any,
    kwargs: Any,
) -> HttpResponseBase:
    """``respond`` for async views: the same flow on the cache's async methods."""
    cache = caches[options.alias]
    key = None
    if request.method in _SAFE_METHODS:
        key = core.page_key(cache, options, view_id, request, users, args, kwargs)
    if key is None:
        return core.mark(await render(), SKIP, options)
    value = await cache.aget(key)
    hit = _served(cache, key, value, options, request)
    if hit is not None:
        return hit
    flow = _after_read(cache, key, value, options, view_id, request, users, render, args, kwargs)
    return await sync_async.arun(flow)


def _after_read(
    cache: BaseCache,
    key: str,
    value: Any,
    options: PageOptions,
    view_id: str,
    request: HttpRequest,
    users: list[Any],
    render: Callable[[], Any],
    args: Any,
    kwargs: Any,
) -> Flow[HttpResponseBase]:
    """After a read that was not a page: render, and fill the cache if the page may be kept."""
    rendered = Both.of(render, render)
    if _render_unstored(value, request):
        return core.mark((yield rendered), SKIP, options)
    fill = _Fill(cache, key, options, request, users, args, kwargs)
    if core.counts_variant(options, request):
        fill.variants = core.variants_key(cache, options, view_id)
    return (yield from fill.flow(rendered))


def _render_unstored(value: Any, request: HttpRequest) -> bool:
    """After a miss: render without storing (a PASS mark; HEAD reads GET's page, never writes)."""
    return bool(value == PASS or request.method == "HEAD")


class _Fill:
    """One miss: render under the page's lock, or wait for whoever holds it."""

    def __init__(
        self,
        cache: BaseCache,
        key: str,
        options: PageOptions,
        request: HttpRequest,
        users: list[Any],
        args: Any,
        kwargs: Any,
    ) -> None:
        self.cache = cache
        self.key = key
        self.options = options
        self.request = request
        # A personal page may be kept for this visitor: their own key, under vary_on_user.
        self.own_key = options.vary_on_user and bool(users)
        self.watch: personal.Watch | None = None
        self.args = args
        self.kwargs = kwargs
        self.ttl = options.timeout(cache)
        # Other backends (DummyCache in development, say) store pages, unlocked and untagged.
        self.lock = ComputeLock(cache, key, None) if isinstance(cache, RedisCache) else None
        # The counter of this view's query-string variants, when this page is one.
        self.variants: str | None = None

    def flow(self, rendered: Both) -> Flow[HttpResponseBase]:
        lock = self.lock
        if lock is not None:
            if (yield Both.of(lock.acquire, lock.aacquire)) is False:
                value = yield from self._wait(lock)
            else:
                # Whoever held the lock may have stored the page between our miss and now.
                value = yield Both.of(self.cache.get, self.cache.aget, self.key)
            hit = _served(self.cache, self.key, value, self.options, self.request)
            if hit is not None or value == PASS:
                yield from self._release()
            if hit is not None:
                return hit
            if value == PASS:  # its render could not be stored: ours may differ, do not store
                return core.mark((yield rendered), SKIP, self.options)
        self.watch = personal.Watch(self.request)
        try:
            response = yield rendered
        except Exception:
            self.watch.finish()
            yield from self._leave_pass()
            yield from self._release()
            raise
        if _deferred(response):
            # A TemplateResponse renders after the view returns (template response
            # middleware first, in a thread for an async view): stored then, by the sync
            # flow. If that render raises, the lock is left to expire (CACHE_LOCK_TIMEOUT)
            # and waiters take over after it.
            cast(Any, response).add_post_render_callback(self.store)
            return cast(HttpResponseBase, response)
        return (yield from self._store(response))

    def store(self, response: HttpResponseBase) -> HttpResponseBase:
        """Store a response rendered later (``TemplateResponse``), from the sync side."""
        return sync_async.run(self._store(response))

    def _store(self, response: HttpResponseBase) -> Flow[HttpResponseBase]:
        """Store ``response`` if it may be shared, mark it, and let the waiters go."""
        try:
            page = self._entry(response)
            if page is None:
                yield from self._leave_pass()
                return core.mark(response, SKIP, self.options)
            if self.variants is not None and not (yield from self._within_cap()):
                return core.mark(response, SKIP, self.options)
            set_page = functools.partial(self.cache.set, **self._set_options())
            aset_page = functools.partial(self.cache.aset, **self._set_options())
            yield Both.of(set_page, aset_page, self.key, page, self.ttl)
            return core.mark(response, MISS, self.options, self.ttl, self.request)
        finally:
            yield from self._release()

    def _entry(self, response: HttpResponseBase) -> bytes | str | None:
        """What to store for ``response``, or None if it may not be kept under this key
        (see ``personal.verdict``: shared pages anywhere, personal ones under the
        visitor's own key only)."""
        read, written = self.watch.finish() if self.watch is not None else (False, False)
        options = self.options
        if response.streaming or response.status_code not in options.statuses:
            return None
        verdict = personal.verdict(self.request, response, options.vary_on_headers, read, written)
        if verdict is None or (verdict == personal.PERSONAL and not self.own_key):
            return None
        text = not entry.stores_bytes(self.cache)
        return entry.encode(cast(HttpResponse, response), self.ttl, text=text)

    def _within_cap(self) -> Flow[bool]:
        """Count this variant; whether the view is still within ``max_query_variants``.

        The counter lives one TTL (pages stored in a window outlive it by at most one
        TTL, so at most twice the cap are alive), or as long as the pages when they never
        expire; Redis unavailable: not stored."""
        cache, counter = self.cache, cast(str, self.variants)
        cap = cast(int, self.options.max_query_variants)
        if cap == 0:
            return False
        yield Both.of(cache.add, cache.aadd, counter, 0, self.ttl)
        try:
            count = yield Both.of(cache.incr, cache.aincr, counter)
        except CacheUnavailable:
            return False
        except (ValueError, TypeError):  # expired meanwhile, or not a counter: a new window
            yield Both.of(cache.delete, cache.adelete, counter)
            return False
        return bool(isinstance(count, int) and count <= cap)

    def _set_options(self) -> dict[str, Any]:
        if isinstance(self.cache, RedisCache):
            return {"tags": self.options.tags_for(self.request, self.args, self.kwargs)}
        return {}

    def _wait(self, lock: ComputeLock) -> Flow[Any]:
        """Poll until the page (or ``PASS``) appears, the lock is ours, or CACHE_LOCK_WAIT ends."""
        deadline = time.monotonic() + (parse_ttl(conf.read("CACHE_LOCK_WAIT")) or 0.0)
        delay = _FIRST_POLL
        while (left := deadline - time.monotonic()) > 0:
            yield Both.of(time.sleep, asyncio.sleep, _pause(delay, left))
            delay = min(delay * _BACKOFF, _MAX_POLL)
            value = yield Both.of(self.cache.get, self.cache.aget, self.key)
            if value is not None:
                return value
            taken = yield Both.of(lock.acquire, lock.aacquire)
            if taken:  # the holder may have stored the page just before it let go
                return (yield Both.of(self.cache.get, self.cache.aget, self.key))
            if taken is None:  # Redis unavailable: stop waiting
                return None
        return None

    def _leave_pass(self) -> Flow[None]:
        """A render that may not be stored leaves a short PASS mark (if this caller holds
        the lock), so the waiters render on their own at once."""
        if self.lock is None or not self.lock.held:
            return
        seconds = PASS_SECONDS if self.ttl is None else min(self.ttl, PASS_SECONDS)
        yield Both.of(self.cache.add, self.cache.aadd, self.key, PASS, seconds)

    def _release(self) -> Flow[None]:
        if self.lock is not None:
            yield Both.of(self.lock.release, self.lock.arelease)


def _pause(delay: float, left: float) -> float:
    """A waiter's sleep before its next poll: jittered, never past the deadline."""
    return min(delay * random.uniform(0.8, 1.2), left)


def _served(
    cache: BaseCache, key: str, value: Any, options: PageOptions, request: HttpRequest
) -> HttpResponseBase | None:
    """The hit's response if ``value`` is a page, else None. With a local tier the same
    value comes back hit after hit: it is read once (``entry.read_held``)."""
    if getattr(cache, "local_tier", None) is not None:
        page = entry.read_held(key, value)
    else:
        page = entry.read(value)
    if page is None:
        return None
    try:
        return core.hit(page, options, request)
    except (ValueError, TypeError):  # a status or header Django refuses: not a page
        return None


def _deferred(response: HttpResponseBase) -> bool:
    return callable(getattr(response, "add_post_render_callback", None)) and not getattr(
        response, "is_rendered", True
    )


def _check_request(request: Any) -> None:
    if not hasattr(request, "META"):
        raise TypeError(
            "cache_response didn't receive an HttpRequest. If you are decorating a "
            "classmethod, be sure to use @method_decorator."
        )


def _view_id(view: Callable[..., Any]) -> str:
    """The view's dotted path: its class for ``as_view()`` and for ``method_decorator``."""
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        return f"{view_class.__module__}.{view_class.__qualname__}"
    # method_decorator decorates functools.partial(bound method) on every call.
    bound = getattr(view, "func", None)
    owner = getattr(bound, "__self__", None)
    if owner is not None:
        cls = type(owner)
        return f"{cls.__module__}.{cls.__qualname__}.{getattr(bound, '__name__', 'view')}"
    return f"{view.__module__}.{view.__qualname__}"
