"""Every package-wide setting with its default, read when used.

A setting is looked up in Django settings first, then in the environment
(same name), then falls back to the default. Nothing is read at import time,
so ``override_settings`` works.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T", int, float, bool, str)

TTL_POLICY_DEFAULTS: dict[str, int] = {
    "session": 86400,
    "view_tracking": 60,
    "bot_analysis": 300,
    "rate_limit": 3600,
    "daily_payout": 86400,
    "default": 3600,
}

DEFAULTS: dict[str, Any] = {
    "CACHE_KEY_SEPARATOR": ":",
    "MAX_CACHE_KEY_LENGTH": 250,
    "CACHE_COMPRESSION_ENABLED": False,
    "REDIS_CONNECT_TIMEOUT": 1.0,
    "REDIS_COMMAND_TIMEOUT": 1.0,
    "REDIS_RETRY_ATTEMPTS": 2,
    "REDIS_RETRY_DELAY": 0.05,
    "CACHE_HEALTH_TIMEOUT": 1.0,
    "CACHE_HEALTH_RETRIES": 2,
    "CACHE_HEALTH_INTERVAL": 0.2,
    "CACHE_STATS_FLUSH_INTERVAL": 5.0,
    "CACHE_CIRCUIT_FAILURES": 5,
    "CACHE_CIRCUIT_COOLDOWN": 5.0,
    "CACHE_LOCAL_FALLBACK_SIZE": 1000,
    "CACHE_PREFIX_DEPTH": 4,
    # Rate limiting (django_creator_cache.ratelimit; checks E020-E023).
    "RATELIMIT_CACHE": "default",
    "RATELIMIT_FAIL_OPEN": True,
    "RATELIMIT_HEADERS": True,
    "RATELIMIT_VIEW": "",
    "RATELIMIT_IPV4_PREFIX": 32,
    "RATELIMIT_IPV6_PREFIX": 64,
    # Hops (int) or networks (list of CIDRs); parsed by ratelimit.config, "" = none.
    "RATELIMIT_TRUSTED_PROXIES": "",
    # get_or_set / @cached: compute a missing value once across processes.
    "CACHE_SINGLE_FLIGHT": True,
    "CACHE_LOCK_TIMEOUT": 10.0,  # a computation's lock expires after this (its holder died)
    "CACHE_LOCK_WAIT": 15.0,  # a waiter gives up waiting and computes itself after this
    # Admin stats page and its chart (django_creator_cache.history; check E040).
    "CACHE_STATS_HISTORY_INTERVAL": 60.0,  # seconds between two samples of an alias; 0 = off
    "CACHE_STATS_HISTORY_SIZE": 60,  # samples kept per alias (a capped Redis list)
    "CACHE_ADMIN_SCAN_LIMIT": 10000,  # keys SCANned per alias for the per-prefix counts
    **{f"CACHE_TTL_{name.upper()}": ttl for name, ttl in TTL_POLICY_DEFAULTS.items()},
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _coerce(name: str, raw: Any, kind: type[T]) -> T:
    """Turn a setting or environment string into the type of its default."""
    if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        return raw
    try:
        if kind is bool:
            text = str(raw).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(text)
        if kind is int and isinstance(raw, float) and not raw.is_integer():
            raise ValueError(raw)
        return kind(raw)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"{name} must be {kind.__name__}, got {raw!r}") from None


def read(name: str) -> Any:
    """Return the current value of one package setting, typed like its default."""
    default = DEFAULTS[name]
    if hasattr(settings, name):
        raw = getattr(settings, name)
    elif name in os.environ:
        raw = os.environ[name]
    else:
        return default
    return _coerce(name, raw, type(default))


def is_ours(name: str) -> bool:
    """Whether a changed setting name is one this package reads."""
    return name in DEFAULTS or name == "CACHES"


def read_bool_env(name: str) -> bool:
    """A boolean switch from Django settings or the environment (default off)."""
    raw = getattr(settings, name, os.environ.get(name, ""))
    return _coerce(name, raw, bool)
