"""Health checks and server facts for one cache alias.

A health check opens a fresh connection to every primary (the pooled ones may
be stuck behind a slower command timeout), without redis-py retries, and each
attempt has ``CACHE_HEALTH_TIMEOUT`` in all: connecting, handshake and PING,
on every node together. ``check`` (the backend's ``health()``: admin page,
commands) retries ``CACHE_HEALTH_RETRIES`` times.

``public_check`` is what the anonymous endpoint asks: no retries, the alias's
circuit breaker first (an open circuit is "unhealthy" at once, without the
network), and its answer kept ``ANSWER_SECONDS`` per process and alias, one
probe at a time, so no request rate makes it open a connection per request.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from .exceptions import CacheUnavailable

if TYPE_CHECKING:
    from .backend.cache import RedisCache


# Seconds the anonymous endpoint keeps an alias's answer in a process.
ANSWER_SECONDS = 1.0


def check(cache: RedisCache, *, retries: int | None = None) -> dict[str, Any]:
    """Ping every primary (``cache.health``); ``healthy``, ``latency_ms`` (slowest node)
    and ``error``. Each attempt takes at most about ``CACHE_HEALTH_TIMEOUT`` whatever the
    number of nodes; ``retries`` (default ``CACHE_HEALTH_RETRIES``) more follow a failure."""
    try:
        checked: dict[str, Any] = cache.health(retries=retries)
    except CacheUnavailable as exc:  # strict mode
        return {
            "alias": cache.alias,
            "healthy": False,
            "latency_ms": None,
            "error": f"{type(exc.cause).__name__}: {exc.cause}",
            "attempts": 1,
        }
    return checked


_answers: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}
_probing: dict[tuple[Any, ...], threading.Lock] = {}
_guard = threading.Lock()


def _fresh(key: tuple[Any, ...]) -> dict[str, Any] | None:
    found = _answers.get(key)
    if found is not None and time.monotonic() - found[0] < ANSWER_SECONDS:
        return found[1]
    return None


def public_check(cache: RedisCache) -> dict[str, Any]:
    """The anonymous endpoint's answer for one alias: ``healthy``, ``latency_ms``, ``error``.

    ``error`` is the exception's class name only. Kept ``ANSWER_SECONDS`` in this
    process; concurrent requests wait for the one probe under way (bounded by
    ``CACHE_HEALTH_TIMEOUT``) instead of each opening a connection.
    """
    options = cache.options
    key = (cache.alias, options.mode, tuple(options.urls))
    answer = _fresh(key)
    if answer is not None:
        return answer
    with _guard:
        lock = _probing.setdefault(key, threading.Lock())
    with lock:
        answer = _fresh(key)
        if answer is None:
            answer = _probe(cache)
            _answers[key] = (time.monotonic(), answer)
    return answer


def _probe(cache: RedisCache) -> dict[str, Any]:
    breaker = cache.runtime.breaker
    # Read-only: ``allow()`` would take the half-open probe the backend's own calls need.
    if breaker.opened_at and time.monotonic() - breaker.opened_at < breaker.cooldown:
        return {"healthy": False, "latency_ms": None, "error": "CircuitOpen"}
    checked = check(cache, retries=0)
    return {
        "healthy": bool(checked["healthy"]),
        "latency_ms": checked["latency_ms"],
        "error": public_error(checked["error"]),
    }


def forget_answers() -> None:
    """Drop the kept answers (tests, or after changing ``CACHES`` at run time)."""
    _answers.clear()


def server_facts(cache: RedisCache) -> dict[str, Any]:
    """Keys, memory, evictions, version and uptime of every primary (``cache.server_facts``)."""
    try:
        facts: dict[str, Any] = cache.server_facts()
    except CacheUnavailable as exc:  # strict mode
        return {"available": False, "server_error": type(exc.cause).__name__, "nodes": []}
    return facts


def our_caches(only: list[str] | None = None) -> list[tuple[str, RedisCache]]:
    """``(alias, backend)`` of every ``CACHES`` alias on this backend, in settings order.

    With ``only``, just those aliases; a name that is not configured, or not on
    this backend, raises ``KeyError`` with a message saying which.
    """
    from django.conf import settings
    from django.core.cache import caches

    from .backend.cache import RedisCache

    configured = list(getattr(settings, "CACHES", {}))
    found: list[tuple[str, RedisCache]] = []
    for alias in only if only is not None else configured:
        if alias not in configured:
            raise KeyError(f"no cache alias {alias!r} in CACHES")
        backend = caches[alias]
        if isinstance(backend, RedisCache):
            found.append((alias, backend))
        elif only is not None:
            raise KeyError(f"cache {alias!r} does not use django_creator_cache's RedisCache")
    return found


def public_error(error: str | None) -> str | None:
    """Only the exception's class name of a health error: no addresses for anonymous callers."""
    if error is None:
        return None
    return error.split(":", 1)[0].strip() or "error"


def report(cache: RedisCache) -> dict[str, Any]:
    """Health and statistics of one alias in one dict (``cache_stats``, the admin page).

    The servers are only asked for counts and facts (INFO, DBSIZE) when the health
    check passed, so an outage costs one bounded health check, not a timeout
    per command (nor, on a strict alias, an error).
    """
    health = check(cache)
    healthy = bool(health["healthy"])
    result = cache.stats(server=healthy, site_wide=healthy)
    result.setdefault("available", False)
    result["healthy"] = health["healthy"]
    result["latency_ms"] = health["latency_ms"]
    result["health_error"] = health["error"]
    return result
