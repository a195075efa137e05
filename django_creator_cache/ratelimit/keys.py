"""Who a limit counts: the key functions ``"ip"``, ``"user"``, ``"user_or_ip"``,
``"header:<Name>"``, ``"get:<field>"``, or a callable ``(request) -> str | None`` (an
``async def`` one for async views only).

A key function returns the identity to count under, or None when the limit does not apply
to this request (``"user"`` on an anonymous request: pair it with an ``"ip"`` limit, or use
``"user_or_ip"``). A missing header or query field is an identity too (an empty one), so
leaving it out does not escape the limit. Header and query values are hashed: API keys and
tokens never appear in Redis key names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, cast

from asgiref.sync import iscoroutinefunction
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

from ..accounts import account_name
from .client_ip import client_ip, ip_group

KeyFunc = Callable[[HttpRequest], str | None]
AsyncKeyFunc = Callable[[HttpRequest], Awaitable[str | None]]
KeySpec = str | KeyFunc | AsyncKeyFunc


def ip_key(request: HttpRequest) -> str:
    return f"ip:{ip_group(client_ip(request))}"


def user_key(request: HttpRequest) -> str | None:
    try:
        user = request.user
    except AttributeError:
        raise ImproperlyConfigured(
            "rate_limited(key='user') needs request.user: add "
            "django.contrib.auth.middleware.AuthenticationMiddleware"
        ) from None
    return user_identity(user)


def user_or_ip_key(request: HttpRequest) -> str:
    return user_key(request) or ip_key(request)


async def auser_key(request: HttpRequest) -> str | None:
    """``user_key`` for async views: ``request.auser()`` loads the user without blocking
    the loop (``request.user`` would query the session and the database synchronously)."""
    auser = getattr(request, "auser", None)
    if auser is None:  # no AuthenticationMiddleware, or a user set by hand
        return user_key(request)
    return user_identity(await auser())


async def auser_or_ip_key(request: HttpRequest) -> str:
    return await auser_key(request) or ip_key(request)


def user_identity(user: Any) -> str | None:
    """``user:<account>`` for an authenticated user (``user:<pk>`` for the project's user
    model, see ``accounts.account_name``), None for an anonymous one or an account with
    neither a primary key nor a username."""
    if not user.is_authenticated:
        return None
    name = account_name(user)
    return None if name is None else f"user:{name}"


def header_key(meta_name: str, request: HttpRequest) -> str:
    return f"header:{meta_name}:{_digest(str(request.META.get(meta_name, '')))}"


def get_key(field: str, request: HttpRequest) -> str:
    return f"get:{field}:{_digest(request.GET.get(field, ''))}"


def _digest(value: str) -> str:
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


_NAMED: dict[str, KeyFunc] = {"ip": ip_key, "user": user_key, "user_or_ip": user_or_ip_key}
_NAMED_ASYNC: dict[str, AsyncKeyFunc] = {"user": auser_key, "user_or_ip": auser_or_ip_key}


def resolve_key(spec: KeySpec) -> KeyFunc:
    """The key function for a ``key=`` argument; raises ValueError for an unknown name."""
    if callable(spec):
        return cast(KeyFunc, spec)
    if spec in _NAMED:
        return _NAMED[spec]
    kind, _, name = spec.partition(":")
    if kind == "header" and name:
        meta = name.upper().replace("-", "_")
        if meta not in ("CONTENT_TYPE", "CONTENT_LENGTH"):  # the two without HTTP_ in META
            meta = f"HTTP_{meta}"
        return partial(header_key, meta)
    if kind == "get" and name:
        return partial(get_key, name)
    raise ValueError(
        f"unknown rate-limit key {spec!r}: use 'ip', 'user', 'user_or_ip', "
        "'header:<Name>', 'get:<field>' or a callable (request) -> str | None"
    )


def is_async_key(spec: KeySpec) -> bool:
    return callable(spec) and iscoroutinefunction(spec)


def resolve_akey(spec: KeySpec) -> AsyncKeyFunc:
    """The key function for an async view: the user keys await ``request.auser()``, an
    ``async def`` key is awaited, and any other key runs as is on the loop (key functions
    read the request; one that queries the database should be ``async def``)."""
    if is_async_key(spec):
        return cast(AsyncKeyFunc, spec)
    if isinstance(spec, str) and spec in _NAMED_ASYNC:
        return _NAMED_ASYNC[spec]
    key_func = resolve_key(spec)

    async def on_the_loop(request: HttpRequest) -> str | None:
        return key_func(request)

    return on_the_loop
