"""``@rate_limited``: limit a view, sync or async, function or class-based.

A few lines over ``Limiter``: find the identity (``key``), count one hit, and refuse with
``RATELIMIT_VIEW`` (a 429 by default) or, with ``block=False``, let the view decide from
``request.ratelimit``. Stacked decorators are each checked, outermost first; any refusal
refuses. Class-based views: ``@method_decorator(rate_limited(...), name="dispatch")``.
Async views are limited on the event loop (``Limiter.ahit``, ``request.auser()``), with
no worker thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar, cast

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from ..exceptions import Ratelimited
from . import config
from .core import Limiter, Usage
from .keys import KeySpec, is_async_key, resolve_akey, resolve_key
from .rates import Rate, as_rate
from .views import too_many_requests

V = TypeVar("V", bound=Callable[..., Any])


@dataclass
class RatelimitState:
    """``request.ratelimit``: whether any limit refused the request, and every check made."""

    limited: bool = False
    usage: list[Usage] = field(default_factory=list)


def rate_limited(
    *,
    rate: Rate | str,
    key: KeySpec = "ip",
    group: str | None = None,
    methods: str | Iterable[str] | None = None,
    algorithm: str = "sliding_window",
    block: bool = True,
    cache: str | None = None,
) -> Callable[[V], V]:
    """Limit a view to ``rate`` (``"100/h"``, ``"10/5m"``) per ``key``.

    ``group`` (default: the view's dotted name) names the counter; views sharing a group
    share a limit. ``methods``: only these HTTP methods are counted (default: all).
    ``cache``: the alias to count in (default ``RATELIMIT_CACHE``), looked up per request.
    """
    parsed = as_rate(rate)
    key_func = resolve_key(key)
    only = None if methods is None else _method_set(methods)
    # Built even without a group, so that a bad algorithm fails at import, not on a request.
    named = Limiter(group or "", parsed, algorithm=algorithm, cache=cache)

    def decorator(view: V) -> V:
        limiter = named
        if group is None:
            limiter = Limiter(_default_group(view), parsed, algorithm=algorithm, cache=cache)

        if iscoroutinefunction(view):
            akey_func = resolve_akey(key)

            async def _async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                _require_request(request)
                state = _state(request, only)
                if state is not None:
                    identity = await akey_func(request)
                    if identity is not None:
                        refused = _counted(request, state, await limiter.ahit(identity), block)
                        if refused is not None:
                            return refused
                return _add_headers(request, await view(request, *args, **kwargs))

            return cast(V, wraps(view)(_async_wrapper))
        if is_async_key(key):
            raise TypeError("an async key function needs an async view")

        def _sync_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            _require_request(request)
            state = _state(request, only)
            if state is not None:
                identity = key_func(request)
                if identity is not None:
                    refused = _counted(request, state, limiter.hit(identity), block)
                    if refused is not None:
                        return refused
            return _add_headers(request, view(request, *args, **kwargs))

        return cast(V, wraps(view)(_sync_wrapper))

    return decorator


def _state(request: HttpRequest, only: frozenset[str] | None) -> RatelimitState | None:
    """``request.ratelimit`` (made on the first check), or None if this method is not counted."""
    state = getattr(request, "ratelimit", None)
    if not isinstance(state, RatelimitState):
        state = RatelimitState()
        setattr(request, "ratelimit", state)  # noqa: B010 (HttpRequest declares no such field)
    if only is not None and request.method not in only:
        return None
    return state


def _counted(
    request: HttpRequest, state: RatelimitState, usage: Usage, block: bool
) -> HttpResponseBase | None:
    """Record one check; the refusal response if it must be refused, else None."""
    state.usage.append(usage)
    if usage.allowed:
        return None
    state.limited = True
    return _refuse(request, usage) if block else None


def _refuse(request: HttpRequest, usage: Usage) -> HttpResponseBase:
    view = config.blocked_view() or too_many_requests
    response: HttpResponseBase = view(request, Ratelimited(usage))
    headers = {"Retry-After": str(max(1, math.ceil(usage.retry_after))), **_headers(usage)}
    for name, value in headers.items():
        if not response.has_header(name):
            response[name] = value
    return response


def _add_headers(request: HttpRequest, response: Any) -> Any:
    """``RateLimit-*`` of the limit closest to refusing (``RATELIMIT_HEADERS``)."""
    state = getattr(request, "ratelimit", None)
    if isinstance(response, HttpResponseBase) and state is not None and config.headers_enabled():
        counted = [usage for usage in state.usage if not usage.unavailable]
        if counted:
            tightest = min(counted, key=lambda u: (u.remaining, -u.reset_seconds))
            for name, value in _headers(tightest).items():
                response[name] = value
    return response


def _headers(usage: Usage) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(usage.limit),
        "RateLimit-Remaining": str(max(usage.remaining, 0)),
        "RateLimit-Reset": str(math.ceil(usage.reset_seconds)),
    }


def _require_request(request: Any) -> None:
    if not hasattr(request, "META"):
        raise TypeError(
            "rate_limited didn't receive an HttpRequest. If you are decorating a "
            "classmethod, be sure to use @method_decorator."
        )


def _method_set(methods: str | Iterable[str]) -> frozenset[str]:
    names = [methods] if isinstance(methods, str) else list(methods)
    return frozenset(name.upper() for name in names)


def _default_group(view: Callable[..., Any]) -> str:
    """The view's dotted name. ``method_decorator`` hands us a partial of the bound method
    on every call: name the instance's class, else every class-based view inheriting
    ``View.dispatch`` would share one limit."""
    owner = getattr(getattr(view, "func", None), "__self__", None)
    name = getattr(view, "__name__", type(view).__name__)
    if owner is not None:
        cls = type(owner)
        return f"{cls.__module__}.{cls.__qualname__}.{name}"
    return f"{view.__module__}.{getattr(view, '__qualname__', name)}"
