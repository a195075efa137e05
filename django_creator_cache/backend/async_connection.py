"""``redis.asyncio`` clients for an alias: one per event loop and configuration.

An asyncio connection belongs to the loop that opened it, so a client cannot
be shared between loops the way the sync client is shared between threads.
Each running loop gets its own clients (single, Sentinel or Cluster, built
from the same ``BackendOptions`` as the sync client), created on first use in
that loop and closed when the loop shuts down: a started async generator is
registered with the loop, and ``asyncio.run`` (and asgiref's ``async_to_sync``,
which runs ``asyncio.run``) closes it in ``shutdown_asyncgens`` while the loop
still runs, which closes the clients cleanly. Entries of loops closed without
that are dropped when the next loop registers.

New connections send no ``CLIENT SETINFO`` (``driver_info=None``): a loop
that lives for one call (``async_to_sync``) must not pay, or show in command
counts, more than its ``HELLO``. A Cluster client of a new loop starts from the
slot map and command table this process already knows (the sync client's, or
a previous loop's) instead of asking the cluster for them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import redis.asyncio
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelConnectionPool
from redis.asyncio.sentinel import SentinelManagedConnection as AsyncSentinelManagedConnection
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import BusyLoadingError, ClusterDownError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError

from . import connection
from .options import BackendOptions
from .resend import guard_client

AsyncClientType = redis.asyncio.Redis | AsyncRedisCluster

# Keys of CONNECTION_POOL_KWARGS that name sync classes or objects: the async pool uses its own.
_SYNC_ONLY = frozenset({"connection_class", "parser_class", "retry"})
_SLOTS = 16384


class AsyncSentinelPrimaryConnection(AsyncSentinelManagedConnection):
    """Asks the sentinels for the primary on every reconnect (see ``SentinelPrimaryConnection``).

    redis.asyncio has the same flaw as the sync client (redis/redis-py#3874): a
    dropped connection reconnects inside the retry loop to the address it had.
    """

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:
            await self.connect()  # type: ignore[no-untyped-call]  # asks the sentinels
        await super().send_packed_command(command, check_health)


@dataclass
class _Topology:
    """What a new loop's Cluster client starts from: slot ranges and the command table."""

    ranges: list[tuple[int, int, list[tuple[str, int, str]]]]
    commands: dict[str, Any]


def _topology_of(nodes_manager: Any, commands_parser: Any) -> _Topology | None:
    """The slot map of a (sync or async) cluster client as ranges of (host, port, type)."""
    slots = nodes_manager.slots_cache
    commands = getattr(commands_parser, "commands", None)
    if len(slots) != _SLOTS or not commands:
        return None
    ranges: list[tuple[int, int, list[tuple[str, int, str]]]] = []
    start = 0
    current = slots[0]
    for slot in range(1, _SLOTS + 1):
        nodes = slots.get(slot) if slot < _SLOTS else None
        if nodes is current:
            continue
        members = [(n.host, int(n.port), n.server_type) for n in current]
        ranges.append((start, slot - 1, members))
        start, current = slot, nodes
    return _Topology(ranges, dict(commands))


class _AsyncCluster(AsyncRedisCluster):
    """Async ``RedisCluster``: timeouts not resent (as ``connection._Cluster``), and the
    first initialisation seeded from what the process knows (no ``CLUSTER SLOTS``,
    no ``COMMAND`` per loop). Later re-initialisations (after MOVED or a dead node)
    ask the cluster as usual, and become the seed of the next loops."""

    ERRORS_ALLOW_RETRY = (  # type: ignore[assignment]  # a narrower tuple on purpose
        RedisConnectionError,
        ClusterDownError,
        SlotNotCoveredError,
    )

    def __init__(self, *, seed: _Seed, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._dcc_seed = seed
        self._dcc_seeded = False

    async def initialize(self, *args: Any, **kwargs: Any) -> AsyncRedisCluster:
        first = not args and not any(kwargs.values())  # not after a failed node
        if self._initialize and not self._dcc_seeded and first:
            self._dcc_seeded = True
            try:
                topology = self._dcc_seed.get()
                if topology is not None and self._seed_from(topology):
                    return self
            except (AttributeError, KeyError, TypeError, IndexError):
                pass  # redis-py's internals differ: initialise from the cluster instead
        self._dcc_seeded = True
        result = await super().initialize(*args, **kwargs)
        with contextlib.suppress(AttributeError, KeyError, TypeError, IndexError):
            learned = _topology_of(self.nodes_manager, self.commands_parser)
            if learned is not None:
                self._dcc_seed.learned = learned
        return result

    def _seed_from(self, topology: _Topology) -> bool:
        manager = self.nodes_manager
        kwargs = manager.connection_kwargs
        nodes: dict[str, AsyncClusterNode] = {}
        slots: dict[int, list[AsyncClusterNode]] = {}
        for start, end, members in topology.ranges:
            shard = []
            for host, port, server_type in members:
                name = f"{host}:{port}"
                if name not in nodes:
                    nodes[name] = AsyncClusterNode(host, port, server_type, **kwargs)
                shard.append(nodes[name])
            for slot in range(start, end + 1):
                slots[slot] = shard
        primaries = [n for n in nodes.values() if n.server_type == "primary"]
        if not primaries:
            return False
        manager.nodes_cache = nodes
        manager.slots_cache = slots
        manager.default_node = primaries[0]
        self.commands_parser.commands = topology.commands
        self.commands_parser.node = primaries[0]
        self._initialize = False
        return True


@dataclass
class _Seed:
    """Per configuration and process: where a new loop's Cluster client starts from."""

    config: tuple[Any, ...]
    learned: _Topology | None = None

    def get(self) -> _Topology | None:
        sync_client = connection._clients.get(self.config)  # never built here: no I/O
        if sync_client is not None:
            known = _topology_of(
                getattr(sync_client, "nodes_manager", None),
                getattr(sync_client, "commands_parser", None),
            )
            if known is not None:
                return known
        return self.learned


_seeds: dict[tuple[Any, ...], _Seed] = {}


def _retry(options: BackendOptions, errors: tuple[type[Exception], ...] | None) -> AsyncRetry:
    backoff = ExponentialWithJitterBackoff(
        base=options.retry_delay, cap=max(options.retry_delay * 16, options.retry_delay)
    )
    if errors is None:
        return AsyncRetry(backoff, options.retry_attempts)
    return AsyncRetry(backoff, options.retry_attempts, supported_errors=errors)  # type: ignore[arg-type,unused-ignore]


def _pool_kwargs(options: BackendOptions) -> dict[str, Any]:
    """The sync pool's parameters (``connection._factory_options``), for redis.asyncio."""
    errors = (RedisConnectionError, BusyLoadingError)
    kwargs: dict[str, Any] = {
        "socket_timeout": options.command_timeout or None,
        "socket_connect_timeout": options.connect_timeout or None,
        "retry": _retry(options, errors),
        "retry_on_error": list(errors),
        "driver_info": None,
    }
    if options.max_connections:
        kwargs["max_connections"] = options.max_connections
    if options.username:
        kwargs["username"] = options.username
    if options.password:
        kwargs["password"] = options.password
    for name, value in (options.raw.get("CONNECTION_POOL_KWARGS") or {}).items():
        if name not in _SYNC_ONLY:
            kwargs[name] = value
    return kwargs


def _client_kwargs(options: BackendOptions) -> dict[str, Any]:
    return dict(options.raw.get("REDIS_CLIENT_KWARGS") or {})


def _single(options: BackendOptions) -> redis.asyncio.Redis:
    pool = redis.asyncio.ConnectionPool.from_url(options.urls[0], **_pool_kwargs(options))
    return redis.asyncio.Redis(connection_pool=pool, **_client_kwargs(options))


def _sentinel(options: BackendOptions) -> redis.asyncio.Redis:
    kwargs = _pool_kwargs(options)
    sentinel = AsyncSentinel(
        options.sentinels,
        sentinel_kwargs=options.sentinel_kwargs or None,
        **{k: v for k, v in kwargs.items() if k not in ("retry", "retry_on_error")},
    )
    url = urlsplit(options.urls[0])
    query = parse_qs(url.query)
    is_master = query.pop("is_master", ["true"])[0].lower() not in ("0", "false", "no", "off")
    plain = urlunsplit(url._replace(query=urlencode(query, doseq=True)))
    if url.scheme == "redis":
        kwargs["connection_class"] = AsyncSentinelPrimaryConnection
    pool = AsyncSentinelConnectionPool.from_url(
        plain,
        service_name=url.hostname,
        sentinel_manager=sentinel,
        is_master=is_master,
        **kwargs,
    )
    return redis.asyncio.Redis(connection_pool=pool, **_client_kwargs(options))


def _cluster(options: BackendOptions, config: tuple[Any, ...]) -> AsyncRedisCluster:
    kwargs = connection.cluster_kwargs(options, AsyncClusterNode, _retry(options, None))
    kwargs.setdefault("driver_info", None)
    seed = _seeds.get(config)
    if seed is None:
        seed = _seeds.setdefault(config, _Seed(config))
    return _AsyncCluster(seed=seed, **kwargs)


def build_async_client(options: BackendOptions) -> AsyncClientType:
    """A new redis.asyncio client for ``options``; connections open lazily, in this loop."""
    if options.mode == "cluster":
        return guard_client(_cluster(options, connection._config_key(options)))  # type: ignore[no-any-return]
    if options.mode == "sentinel":
        return guard_client(_sentinel(options))  # type: ignore[no-any-return]
    return guard_client(_single(options))  # type: ignore[no-any-return]


# -- one set of clients per event loop ------------------------------------------------------


@dataclass
class _LoopClients:
    clients: dict[tuple[Any, ...], AsyncClientType] = field(default_factory=dict)
    keeper: AsyncGenerator[None, None] | None = None

    async def aclose(self) -> None:
        clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            try:
                if isinstance(client, AsyncRedisCluster):
                    await client.aclose()
                else:
                    await client.aclose(close_connection_pool=True)
            except Exception:  # closing on the way out: nothing to report to
                pass


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = (
    weakref.WeakKeyDictionary()
)
_loops_lock = threading.Lock()


async def _keeper(state: _LoopClients) -> AsyncGenerator[None, None]:
    """Suspended for the loop's life; ``shutdown_asyncgens`` runs its ``finally``."""
    try:
        yield
    finally:
        loop = asyncio.get_running_loop()
        with _loops_lock:
            if _loops.get(loop) is state:
                del _loops[loop]
        await state.aclose()


def _register(loop: asyncio.AbstractEventLoop) -> _LoopClients:
    state = _LoopClients()
    keeper = _keeper(state)
    step = keeper.__anext__()  # registers it with the running loop (asyncgen hooks)
    with contextlib.suppress(StopIteration):
        step.send(None)  # runs it to its ``yield``, so closing it runs the ``finally``
    state.keeper = keeper
    with _loops_lock:
        for other in [other for other in _loops if other.is_closed()]:
            del _loops[other]
        _loops[loop] = state
    return state


def get_async_client(options: BackendOptions, config: tuple[Any, ...] | None = None) -> Any:
    """The redis.asyncio client for ``options`` in the running event loop."""
    loop = asyncio.get_running_loop()
    state = _loops.get(loop)
    if state is None:
        state = _register(loop)
    key = connection._config_key(options) if config is None else config
    client = state.clients.get(key)
    if client is None:
        client = state.clients[key] = build_async_client(options)
    return client


def loops_with_clients() -> int:
    """How many event loops hold clients now (tests: loops are cleaned up)."""
    with _loops_lock:
        return len(_loops)
