"""Building the redis-py client for an alias, one per process and configuration.

Single and Sentinel connections come from django-redis's connection factories
(its pools, parsers and Sentinel support); Cluster uses redis-py's
``RedisCluster``. Clients are shared by every backend instance of the process
with the same configuration: Django makes a backend per thread, and each would
otherwise open its own pool.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar
from urllib.parse import urlsplit

import redis
from django_redis.pool import ConnectionFactory, SentinelConnectionFactory
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import BusyLoadingError, ClusterDownError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry
from redis.sentinel import SentinelManagedConnection

from .options import BackendOptions
from .resend import guard_client

RedisClientType = redis.Redis | RedisCluster

_clients: dict[tuple[Any, ...], RedisClientType] = {}
_lock = threading.Lock()


class _PoolPerConfig:
    """django-redis keys its pool cache by URL only; two aliases with one URL
    and different timeouts must not share a pool, so key by every parameter."""

    _pools: ClassVar[dict[str, Any]]

    def get_or_create_connection_pool(self, params: dict[str, Any]) -> Any:
        # CONNECTION_POOL_KWARGS (the retry policy, max_connections) are parameters too:
        # two aliases differing only there must not share the first one's pool.
        every = {**params, **self.pool_cls_kwargs}  # type: ignore[attr-defined]
        key = repr(sorted((k, repr(v)) for k, v in every.items()))
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = self.get_connection_pool(params)  # type: ignore[attr-defined]
        return pool


class SentinelPrimaryConnection(SentinelManagedConnection):
    """Asks the sentinels for the primary on every reconnect, retries included.

    redis-py reconnects a dropped connection inside its retry loop with the address it
    had (redis/redis-py#3874): after a failover, or a READONLY reply from a demoted
    primary, every retry went back to the old primary and the call failed.
    """

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:
            self.connect()  # type: ignore[no-untyped-call]  # asks the sentinels, like the pool
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


class _Factory(_PoolPerConfig, ConnectionFactory):  # type: ignore[misc]
    _pools: ClassVar[dict[str, Any]] = {}


class _SentinelFactory(_PoolPerConfig, SentinelConnectionFactory):  # type: ignore[misc]
    _pools: ClassVar[dict[str, Any]] = {}


def make_retry(options: BackendOptions, errors: tuple[type[Exception], ...] | None = None) -> Retry:
    """Exponential backoff with jitter for transient connection errors.

    ``errors`` replaces redis-py's default retried errors, which include
    timeouts (``retry_on_error`` can only add to them, never remove one).
    """
    backoff = ExponentialWithJitterBackoff(
        base=options.retry_delay, cap=max(options.retry_delay * 16, options.retry_delay)
    )
    if errors is None:
        return Retry(backoff, options.retry_attempts)
    return Retry(backoff, options.retry_attempts, supported_errors=errors)


def _retry_errors() -> list[type[Exception]]:
    # Timeouts are not retried: a slow server must not cost several timeouts, and
    # a command that timed out may have run (an INCR sent again would count twice).
    return [RedisConnectionError, BusyLoadingError]


def _factory_options(options: BackendOptions) -> dict[str, Any]:
    pool_kwargs: dict[str, Any] = {
        "retry": make_retry(options, tuple(_retry_errors())),
        "retry_on_error": _retry_errors(),
    }
    if options.max_connections:
        pool_kwargs["max_connections"] = options.max_connections
    if options.mode == "sentinel" and urlsplit(options.urls[0]).scheme == "redis":
        pool_kwargs["connection_class"] = SentinelPrimaryConnection
    pool_kwargs.update(options.raw.get("CONNECTION_POOL_KWARGS") or {})
    factory_options: dict[str, Any] = {
        "SOCKET_TIMEOUT": options.command_timeout or None,
        "SOCKET_CONNECT_TIMEOUT": options.connect_timeout or None,
        "CONNECTION_POOL_KWARGS": pool_kwargs,
        "USERNAME": options.username,
        "PASSWORD": options.password,
    }
    for name in ("PARSER_CLASS", "CONNECTION_POOL_CLASS", "REDIS_CLIENT_KWARGS"):
        if name in options.raw:
            factory_options[name] = options.raw[name]
    if options.mode == "sentinel":
        factory_options["SENTINELS"] = options.sentinels
        factory_options["SENTINEL_KWARGS"] = options.sentinel_kwargs or None
    return factory_options


class _Cluster(RedisCluster):
    """``RedisCluster`` that does not resend a command that timed out: it may have
    run (an INCR sent again would count twice), and a slow node must cost one
    timeout, not several. Connection errors and CLUSTERDOWN are still retried."""

    ERRORS_ALLOW_RETRY = (  # type: ignore[assignment]  # a narrower tuple on purpose
        RedisConnectionError,
        ClusterDownError,
        SlotNotCoveredError,
    )


def cluster_kwargs(options: BackendOptions, node: type[Any], retry: Any) -> dict[str, Any]:
    """``RedisCluster`` arguments of ``options`` (sync or async: ``node`` is its
    ``ClusterNode`` class, ``retry`` its retry policy)."""
    nodes = []
    for url in options.urls:
        parts = urlsplit(url)
        nodes.append(node(parts.hostname or "127.0.0.1", parts.port or 6379))
    first = urlsplit(options.urls[0])
    kwargs: dict[str, Any] = {
        "startup_nodes": nodes,
        "socket_timeout": options.command_timeout or None,
        "socket_connect_timeout": options.connect_timeout or None,
        "retry": retry,
        "username": options.username or first.username,
        "password": options.password or first.password,
        "ssl": first.scheme == "rediss",
    }
    if options.max_connections:
        kwargs["max_connections"] = options.max_connections
    kwargs.update(options.raw.get("CLUSTER_KWARGS") or {})
    return kwargs


def _cluster(options: BackendOptions) -> RedisCluster:
    return _Cluster(**cluster_kwargs(options, ClusterNode, make_retry(options)))


def _config_key(options: BackendOptions) -> tuple[Any, ...]:
    raw = tuple(sorted((k, repr(v)) for k, v in options.raw.items()))
    return (
        options.mode,
        tuple(options.urls),
        options.connect_timeout,
        options.command_timeout,
        options.retry_attempts,
        options.retry_delay,
        raw,
    )


def get_client(options: BackendOptions) -> RedisClientType:
    """The process-wide redis-py client for ``options`` (built on first use)."""
    key = _config_key(options)
    client = _clients.get(key)
    if client is not None:
        return client
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = build_client(options)
    return client


def build_client(options: BackendOptions) -> RedisClientType:
    """A new redis-py client for ``options``; connections open lazily and never resend
    a command that may have run (``resend``)."""
    if options.mode == "cluster":
        return guard_client(_cluster(options))  # type: ignore[no-any-return]
    factory_cls = _SentinelFactory if options.mode == "sentinel" else _Factory
    factory = factory_cls(_factory_options(options))
    client: redis.Redis = factory.connect(options.urls[0])
    return guard_client(client)  # type: ignore[no-any-return]
