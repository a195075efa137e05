"""Health checks and server facts for one cache alias.

A health check opens a fresh connection to every primary with
``CACHE_HEALTH_TIMEOUT`` as its only timeout (the pooled connections may be
stuck behind a slower command timeout), so a load balancer probe answers fast.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from redis.backoff import NoBackoff
from redis.retry import Retry

from . import conf
from .backend.policy import REDIS_ERRORS
from .exceptions import CacheUnavailable
from .stats import parse_info

if TYPE_CHECKING:
    from .backend.cache import RedisCache


def _pools(cache: RedisCache) -> list[Any]:
    client = cache.get_client()
    if hasattr(client, "get_primaries"):
        return [
            node.redis_connection.connection_pool
            for node in client.get_primaries()
            if node.redis_connection is not None
        ]
    return [client.connection_pool]


def _ping(pool: Any, timeout: float) -> None:
    conn = pool.make_connection()
    conn.socket_timeout = timeout
    conn.socket_connect_timeout = timeout
    conn.retry = Retry(NoBackoff(), 0)
    try:
        conn.connect()
        conn.send_command("PING")
        reply = conn.read_response()
        if reply not in (b"PONG", "PONG", True):
            raise ConnectionError(f"unexpected PING reply {reply!r}")
    finally:
        conn.disconnect()


def check(cache: RedisCache) -> dict[str, Any]:
    """Ping every primary; ``healthy``, ``latency_ms`` (slowest node) and ``error``."""
    timeout = float(conf.read("CACHE_HEALTH_TIMEOUT"))
    retries = int(conf.read("CACHE_HEALTH_RETRIES"))
    interval = float(conf.read("CACHE_HEALTH_INTERVAL"))
    error = "no attempt made"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(interval)
        try:
            latencies = []
            for pool in _pools(cache):
                start = time.perf_counter()
                _ping(pool, timeout)
                latencies.append((time.perf_counter() - start) * 1000)
        except (*REDIS_ERRORS, ConnectionError) as exc:  # type: ignore[misc]
            error = f"{type(exc).__name__}: {exc}"
            continue
        return {
            "alias": cache.alias,
            "healthy": True,
            "latency_ms": round(max(latencies, default=0.0), 3),
            "error": None,
            "attempts": attempt + 1,
        }
    return {
        "alias": cache.alias,
        "healthy": False,
        "latency_ms": None,
        "error": error,
        "attempts": retries + 1,
    }


def server_facts(cache: RedisCache) -> dict[str, Any]:
    """Keys, memory, evictions, version and uptime of every primary."""
    nodes = []
    try:
        found = cache.primaries_info()
    except CacheUnavailable as exc:  # strict mode
        found = None
        error = f"{type(exc.cause).__name__}: {exc.cause}"
    else:
        error = "Redis did not answer"
    if found is None:
        return {"available": False, "server_error": error, "nodes": nodes}
    for address, info, keys in found:
        facts = parse_info(info)
        facts["address"] = address
        facts["keys"] = keys
        nodes.append(facts)
    first = nodes[0] if nodes else {}
    return {
        "available": True,
        "keys": sum(n["keys"] for n in nodes),
        "used_memory": sum(n["used_memory"] or 0 for n in nodes),
        "used_memory_peak": sum(n["used_memory_peak"] or 0 for n in nodes),
        "evicted_keys": sum(n["evicted_keys"] or 0 for n in nodes),
        "redis_version": first.get("redis_version"),
        "uptime_seconds": min((n["uptime_seconds"] or 0 for n in nodes), default=0),
        "nodes": nodes,
    }


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

    The servers are only asked for their facts (INFO, DBSIZE) when the health
    check passed, so an outage costs one bounded health check, not a timeout
    per command.
    """
    health = cache.health()
    result = cache.stats(server=bool(health["healthy"]))
    result.setdefault("available", False)
    result["healthy"] = health["healthy"]
    result["latency_ms"] = health["latency_ms"]
    result["health_error"] = health["error"]
    return result
