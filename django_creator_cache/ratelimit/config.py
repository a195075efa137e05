"""Rate-limit settings, typed and read when used, and their system checks.

Defaults live in ``django_creator_cache.conf.DEFAULTS`` with the package's other settings.
``RATELIMIT_TRUSTED_PROXIES`` takes a number of proxy hops or a list of networks, so it is
parsed here rather than coerced to one type.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .. import conf

Network = IPv4Network | IPv6Network
# A number of trusted proxy hops, or the networks of the trusted proxies.
TrustedProxies = int | tuple[Network, ...]
PREFIX_BITS = {"RATELIMIT_IPV4_PREFIX": 32, "RATELIMIT_IPV6_PREFIX": 128}
BACKEND_CLASS = "django_creator_cache.backend.cache.RedisCache"


def cache_alias() -> str:
    alias: str = conf.read("RATELIMIT_CACHE")
    return alias


def fail_open() -> bool:
    value: bool = conf.read("RATELIMIT_FAIL_OPEN")
    return value


def headers_enabled() -> bool:
    value: bool = conf.read("RATELIMIT_HEADERS")
    return value


def prefix(name: str) -> int:
    """``RATELIMIT_IPV4_PREFIX`` or ``RATELIMIT_IPV6_PREFIX``, checked against the address size."""
    value: int = conf.read(name)
    if not 0 <= value <= PREFIX_BITS[name]:
        raise ImproperlyConfigured(f"{name} must be between 0 and {PREFIX_BITS[name]}, got {value}")
    return value


def blocked_view() -> Callable[..., Any] | None:
    """The view named by ``RATELIMIT_VIEW``, or None for the built-in 429."""
    path: str = conf.read("RATELIMIT_VIEW")
    return _import_view(path) if path else None


@lru_cache(maxsize=8)
def _import_view(path: str) -> Callable[..., Any]:
    try:
        view = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"RATELIMIT_VIEW {path!r} cannot be imported: {exc}") from exc
    if not callable(view):
        raise ImproperlyConfigured(f"RATELIMIT_VIEW {path!r} is not callable")
    return view  # type: ignore[no-any-return]


def trusted_proxies() -> TrustedProxies:
    """``RATELIMIT_TRUSTED_PROXIES``: hops (int, or digits from the environment) or networks
    (a list of CIDRs, or a comma-separated string)."""
    name = "RATELIMIT_TRUSTED_PROXIES"
    raw = getattr(settings, name) if hasattr(settings, name) else os.environ.get(name, "")
    if isinstance(raw, list | tuple | set | frozenset):
        raw = tuple(sorted(map(str, raw)))
    return _parse_trusted(raw)


@lru_cache(maxsize=16)
def _parse_trusted(raw: Any) -> TrustedProxies:
    if isinstance(raw, str):
        text = raw.strip()
        if text.isdigit():
            return int(text)
        raw = tuple(part.strip() for part in text.split(",") if part.strip())
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    if isinstance(raw, tuple):
        try:
            return tuple(ip_network(item, strict=False) for item in raw)
        except ValueError as exc:
            raise ImproperlyConfigured(f"RATELIMIT_TRUSTED_PROXIES: {exc}") from None
    raise ImproperlyConfigured(
        "RATELIMIT_TRUSTED_PROXIES must be a number of proxy hops (>= 0) or a list of "
        f"networks such as ['10.0.0.0/8'], got {raw!r}"
    )


def check_settings(**kwargs: Any) -> list[checks.CheckMessage]:
    """E020 trusted proxies, E021 prefix lengths, E022 the blocked view, E023 the cache alias.

    Wrongly typed booleans and negative numbers are reported by the package-wide E004.
    """
    errors: list[checks.CheckMessage] = []
    try:
        trusted_proxies()
    except ImproperlyConfigured as exc:
        errors.append(checks.Error(str(exc), id="django_creator_cache.E020"))
    for name, bits in PREFIX_BITS.items():
        try:
            value = conf.read(name)
        except ImproperlyConfigured:
            continue  # E004
        if value > bits:
            errors.append(
                checks.Error(f"{name} must be at most {bits}", id="django_creator_cache.E021")
            )
    try:
        blocked_view()
    except ImproperlyConfigured as exc:
        errors.append(
            checks.Error(
                str(exc),
                hint="Name a view taking (request, exception), or leave it empty for a 429.",
                id="django_creator_cache.E022",
            )
        )
    errors.extend(_check_cache())
    return errors


def _check_cache() -> list[checks.CheckMessage]:
    """An explicitly chosen ``RATELIMIT_CACHE`` must be a CACHES alias on this backend.

    The default alias is only checked when used (a site may not rate limit at all)."""
    name = "RATELIMIT_CACHE"
    if not hasattr(settings, name) and name not in os.environ:
        return []
    alias = cache_alias()
    entry = getattr(settings, "CACHES", {}).get(alias)
    if entry is None:
        message = f"{name} {alias!r} is not an alias in CACHES"
    else:
        try:
            backend = import_string(entry.get("BACKEND", ""))
        except ImportError:
            return []  # the cache framework reports a backend it cannot import
        if _is_ours(backend):
            return []
        message = f"{name} {alias!r} uses {entry.get('BACKEND')}, not {BACKEND_CLASS}"
    return [
        checks.Error(
            message,
            hint="Rate limits run Lua scripts on Redis: use a django_creator_cache alias.",
            id="django_creator_cache.E023",
        )
    ]


def _is_ours(backend: Any) -> bool:
    from ..backend.cache import RedisCache

    return isinstance(backend, type) and issubclass(backend, RedisCache)
