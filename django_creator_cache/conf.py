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

from . import durations

T = TypeVar("T", int, float, bool, str)

TTL_PREFIX = "CACHE_TTL_"
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
    # Prometheus metrics per alias (django_creator_cache.metrics; the prometheus extra, E050).
    "CACHE_METRICS": False,
    **{f"CACHE_TTL_{name.upper()}": ttl for name, ttl in TTL_POLICY_DEFAULTS.items()},
}

# Duration settings: a number is seconds, a string may say its unit ("500ms", "2s"), a
# timedelta is taken as is. The value is the largest *bare* number (no unit) accepted: other
# cache layers take these in milliseconds, and 5000 read as seconds makes a call to a server
# that accepts connections but never answers hang for 83 minutes. A timeout of a minute or
# more is slower than any work a cache saves, and a retry backoff base of 5 s (doubling up to
# 16x) would hold a request for minutes: bare numbers from there up are refused (system check
# E006, ImproperlyConfigured at first use). With a unit ("90s") any value is taken as meant.
DURATION_LIMITS: dict[str, float] = {
    "REDIS_CONNECT_TIMEOUT": 60,
    "REDIS_COMMAND_TIMEOUT": 60,
    "REDIS_RETRY_DELAY": 5,
    "CACHE_HEALTH_TIMEOUT": 60,
    "CACHE_HEALTH_INTERVAL": 60,
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


class ImplausibleDuration(ImproperlyConfigured):
    """A bare number that cannot be meant as seconds (most likely milliseconds)."""

    def __init__(self, name: str, raw: Any, limit: float) -> None:
        self.name = name
        super().__init__(
            f"{name} is {raw!r}, read as {raw} seconds: a bare number is seconds, and "
            f"{limit:g} or more is implausible here (milliseconds meant?). "
            f"Write '{raw}ms' for milliseconds, or '{raw}s' if you mean seconds."
        )


def duration(name: str, raw: Any, limit_of: str | None = None) -> float:
    """``raw`` (the value of setting ``name``) in seconds; ``limit_of`` is the setting whose
    plausibility limit applies (an OPTIONS key stands for a package setting)."""
    try:
        parsed = durations.parse(raw)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(
            f"{name} must be a duration: {durations.EXAMPLES}, got {raw!r}"
        ) from None
    if parsed.seconds < 0:
        raise ImproperlyConfigured(f"{name} must not be negative, got {raw!r}")
    limit = DURATION_LIMITS[limit_of or name]
    if not parsed.explicit and parsed.seconds >= limit:
        raise ImplausibleDuration(name, raw, limit)
    return parsed.seconds


def _raw(name: str) -> tuple[bool, Any]:
    """``(found, value)`` of a setting: Django settings first, then the environment."""
    if hasattr(settings, name):
        return True, getattr(settings, name)
    if name in os.environ:
        return True, os.environ[name]
    return False, None


def read(name: str) -> Any:
    """Return the current value of one package setting, typed like its default."""
    default = DEFAULTS[name]
    found, raw = _raw(name)
    if not found:
        return default
    if name in DURATION_LIMITS:
        return duration(name, raw)
    if name.startswith(TTL_PREFIX):
        return ttl_policy(name.removeprefix(TTL_PREFIX).lower())
    return _coerce(name, raw, type(default))


def ttl_policy(name: str) -> int:
    """Seconds of TTL policy ``name``: ``CACHE_TTL_<NAME>`` (Django settings, then the
    environment; seconds or a duration such as ``"15m"``), else the built-in default.
    ``KeyError`` for a name that is neither set nor built in (a typo must not pass)."""
    setting = TTL_PREFIX + name.upper()
    found, raw = _raw(setting)
    if not found:
        if name.lower() in TTL_POLICY_DEFAULTS:
            return TTL_POLICY_DEFAULTS[name.lower()]
        known = ", ".join(sorted(TTL_POLICY_DEFAULTS))
        raise KeyError(f"unknown TTL policy {name!r}: set {setting} (built in: {known})")
    try:
        seconds = durations.parse(raw).seconds
    except (TypeError, ValueError):
        raise ImproperlyConfigured(
            f"{setting} must be whole seconds or a duration such as '15m', got {raw!r}"
        ) from None
    if seconds < 0:
        raise ImproperlyConfigured(f"{setting} must not be negative, got {raw!r}")
    if not seconds.is_integer():
        raise ImproperlyConfigured(f"{setting} must be whole seconds, got {raw!r}")
    return int(seconds)


def ttl_policy_settings() -> list[str]:
    """Every ``CACHE_TTL_<NAME>`` set in Django settings or the environment, and the
    built-in ones."""
    names = {TTL_PREFIX + name.upper() for name in TTL_POLICY_DEFAULTS}
    names.update(n for n in dir(settings) if n.startswith(TTL_PREFIX) and n.isupper())
    names.update(n for n in os.environ if n.startswith(TTL_PREFIX) and n.isupper())
    return sorted(names)


def is_ours(name: str) -> bool:
    """Whether a changed setting name is one this package reads."""
    return name in DEFAULTS or name == "CACHES"


def read_bool_env(name: str) -> bool:
    """A boolean switch from Django settings or the environment (default off)."""
    raw = getattr(settings, name, os.environ.get(name, ""))
    return _coerce(name, raw, bool)
