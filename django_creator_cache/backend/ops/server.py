"""What the servers behind an alias say about themselves: ``INFO``, ``DBSIZE``, health.

A health check opens a fresh connection to every primary (the pooled ones may be
stuck behind a slower command timeout), without redis-py retries, and each attempt
has ``CACHE_HEALTH_TIMEOUT`` in all: connecting, handshake and PING, on every node
together. ``health`` retries ``CACHE_HEALTH_RETRIES`` times, ``CACHE_HEALTH_INTERVAL``
apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ... import conf
from .. import counters
from ..execution import Request, Sleep, Steps, Unavailable

if TYPE_CHECKING:
    from ..protocol import Backend


class PrimariesInfo(Request):
    """``(address, INFO, DBSIZE)`` of every primary (each Cluster primary, the Sentinel
    primary, or the one server)."""

    __slots__ = ()

    def send(self, client: Any) -> Any:
        if hasattr(client, "nodes_manager"):
            nodes = [(n.name, n.redis_connection) for n in client.get_primaries()]
        else:
            nodes = [(_address(client.connection_pool), client)]
        return [(address, node.info(), int(node.dbsize())) for address, node in nodes]

    async def asend(self, client: Any) -> Any:
        if hasattr(client, "nodes_manager"):
            await client.initialize()
            found = []
            for node in client.get_primaries():
                info = await client.info(target_nodes=node)
                keys = await client.dbsize(target_nodes=node)
                found.append((node.name, info, int(keys)))
            return found
        pool = client.connection_pool
        locate = getattr(pool, "get_master_address", None)
        address = ":".join(map(str, await locate())) if locate else _address(pool)
        return [(address, await client.info(), int(await client.dbsize()))]


def _address(pool: Any) -> str:
    locate = getattr(pool, "get_master_address", None)
    if locate is not None:  # Sentinel: the pool knows only the service; ask the sentinels
        host, port = locate()
        return f"{host}:{port}"
    kwargs = pool.connection_kwargs
    return str(kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}")


def primaries_info(cache: Backend) -> Steps[list[tuple[str, dict[str, Any], int]] | None]:
    """Every primary's address, ``INFO`` and key count; None if Redis cannot answer."""
    try:
        found: list[tuple[str, dict[str, Any], int]] = yield PrimariesInfo()
    except Unavailable:
        return None
    return found


def parse_info(info: dict[str, Any]) -> dict[str, Any]:
    """The server facts the stats page shows, from one ``INFO`` reply."""
    names = (
        "redis_version", "used_memory", "used_memory_human", "used_memory_peak",
        "used_memory_peak_human", "maxmemory", "evicted_keys", "expired_keys",
        "connected_clients", "keyspace_hits", "keyspace_misses",
    )  # fmt: skip
    facts = {name: info.get(name) for name in names}
    facts["uptime_seconds"] = info.get("uptime_in_seconds")
    return facts


def server_facts(cache: Backend) -> Steps[dict[str, Any]]:
    """Keys, memory, evictions, version and uptime of every primary."""
    found = yield from primaries_info(cache)
    if found is None:
        return {"available": False, "server_error": "Redis did not answer", "nodes": []}
    nodes = [
        {**parse_info(info), "address": address, "keys": keys} for address, info, keys in found
    ]
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


def stats(cache: Backend, server: bool = True, site_wide: bool = True) -> Steps[dict[str, Any]]:
    """Site-wide counters for this alias (this process's own if Redis cannot tell, or
    without ``site_wide``: no call at all), plus server facts when ``server``."""
    runtime = cache.runtime
    shared = None
    if site_wide and not runtime.breaker.opened_at:  # open: this process's counts
        with contextlib.suppress(Unavailable):
            shared = yield ("HGETALL", cache.internal_key("stats", cache.alias))
    fallback = runtime.fallback
    result: dict[str, Any] = {
        "alias": cache.alias,
        "mode": cache.options.mode,
        "location": cache.options.safe_location,
        **counters.totals(runtime.counters, shared),
        "circuit": runtime.breaker.state,
        "local_fallback_entries": None if fallback is None else len(fallback),
        "local_tier": None if cache.local_tier is None else cache.local_tier.state(),
    }
    if server:
        result.update((yield from server_facts(cache)))
    return result


class FreshPing(Request):
    """PING every primary on a fresh connection, ``timeout`` seconds for all of it (no
    retries); the reply is the slowest node's latency in milliseconds."""

    __slots__ = ("timeout",)
    # What the admin and the commands show is the server's state, not the breaker's;
    # its success closes the circuit like any probe.
    through_open_circuit = True

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def send(self, client: Any) -> Any:
        deadline = time.monotonic() + self.timeout
        slowest = 0.0
        for pool in _pools(client):
            start = time.perf_counter()
            conn = _fresh(pool, _left(deadline))
            try:
                conn.connect()
                if conn._sock is not None:
                    conn._sock.settimeout(_left(deadline))  # the reply gets what is left
                conn.send_command("PING")
                _pong(conn.read_response())
            finally:
                conn.disconnect()
            slowest = max(slowest, (time.perf_counter() - start) * 1000)
        return slowest

    async def asend(self, client: Any) -> Any:
        deadline = time.monotonic() + self.timeout
        if hasattr(client, "nodes_manager"):
            await client.initialize()
        slowest = 0.0
        for pool in _pools(client):
            start = time.perf_counter()
            conn = _fresh(pool, _left(deadline))
            try:
                async with asyncio.timeout(_left(deadline)):
                    await conn.connect()
                    await conn.send_command("PING")
                    _pong(await conn.read_response())
            except TimeoutError as exc:
                raise RedisTimeoutError("health check timed out") from exc
            finally:
                await conn.disconnect()
            slowest = max(slowest, (time.perf_counter() - start) * 1000)
        return slowest


def _pools(client: Any) -> list[Any]:
    if hasattr(client, "nodes_manager"):
        primaries = client.get_primaries()
        if primaries and hasattr(primaries[0], "redis_connection"):  # sync Cluster
            return [n.redis_connection.connection_pool for n in primaries if n.redis_connection]
        return [_NodePool(node) for node in primaries]  # redis.asyncio Cluster
    return [client.connection_pool]


class _NodePool:
    """An async Cluster node as a pool: ``make_connection`` as its own connections are made."""

    def __init__(self, node: Any) -> None:
        self._node = node

    def make_connection(self) -> Any:
        node = self._node
        return node.connection_class(**node.connection_kwargs)


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise RedisTimeoutError("health check timed out before every node answered")
    return left


def _fresh(pool: Any, timeout: float) -> Any:
    conn = pool.make_connection()
    conn.socket_timeout = timeout
    conn.socket_connect_timeout = timeout
    conn.retry = Retry(NoBackoff(), 0)
    return conn


def _pong(reply: Any) -> None:
    if reply not in (b"PONG", "PONG", True):
        raise RedisConnectionError(f"unexpected PING reply {reply!r}")


def health(cache: Backend, retries: int | None = None) -> Steps[dict[str, Any]]:
    """Ping every primary; ``healthy``, ``latency_ms`` (slowest node), ``error`` and
    ``attempts``. An attempt takes at most about ``CACHE_HEALTH_TIMEOUT`` whatever the
    number of nodes; ``retries`` (default ``CACHE_HEALTH_RETRIES``) more follow a failure."""
    timeout = float(conf.read("CACHE_HEALTH_TIMEOUT"))
    retries = int(conf.read("CACHE_HEALTH_RETRIES")) if retries is None else retries
    interval = float(conf.read("CACHE_HEALTH_INTERVAL"))
    error = "no attempt made"
    for attempt in range(retries + 1):
        if attempt:
            yield Sleep(interval)
        try:
            latency = yield FreshPing(timeout)
        except Unavailable as exc:
            error = f"{type(exc.cause).__name__}: {exc.cause}"
            continue
        answer = {"healthy": True, "latency_ms": round(latency, 3), "error": None}
        return {"alias": cache.alias, **answer, "attempts": attempt + 1}
    answer = {"healthy": False, "latency_ms": None, "error": error}
    return {"alias": cache.alias, **answer, "attempts": retries + 1}
