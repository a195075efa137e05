"""``RedisCache``: the Django cache backend.

A thin front over shared redis-py clients. It builds keys (hashing long ones),
encodes values and holds its alias's per-process runtime (breaker, counters,
fallback); every operation is described once in ``ops`` and run by the
``execution`` layer, which owns the failure policy, on the sync client or on
the running loop's async client (``get`` and ``aget`` are one description).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator
from functools import cached_property
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.exceptions import ImproperlyConfigured

from ..exceptions import CorruptValue
from ..keys import KeyManager
from ..ttl import policy
from . import async_connection, connection, local_tier
from . import counters as counts
from . import options as options_module
from .codec import Codec, load_compressor, load_serializer
from .execution import Executor, Steps
from .keying import Keying
from .local_tier import LocalTier
from .ops import browse, counters, keyspace, reads, server, twin, writes
from .runtime import Runtime
from .structures import StructuresMixin

logger = logging.getLogger("django_creator_cache")

_MISSING = object()
# The module that implements get_or_set (single flight), a layer above the backend.
SINGLE_FLIGHT = "django_creator_cache.cache_aside.single_flight"


def _get_or_set(
    cache: RedisCache,
    key: Any,
    default: Any,
    timeout: Any = DEFAULT_TIMEOUT,
    version: int | None = None,
    **flight: Any,
) -> Steps[Any]:
    """Django's ``get_or_set``, computed once across processes; a hit is one GET.

    ``flight``: ``single_flight``, ``lock_timeout``, ``wait_timeout``, ``early_refresh``,
    ``jitter``, ``tags``, ``failure_ttl`` (see ``cache_aside.single_flight``); on the
    async side ``default`` may return an awaitable.
    """
    return (yield from cache.flight.flight(cache, key, default, timeout, version, **flight))


class RedisCache(Keying, StructuresMixin, BaseCache):
    """Django cache backend on Redis, Sentinel or Redis Cluster.

    Every ``a*`` method is its sync twin's description run natively on
    redis.asyncio (no thread hop), so a value written by one side reads the
    same on the other and an outage degrades both alike.
    """

    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        if "TIMEOUT" not in params:
            params = {**params, "TIMEOUT": policy("default")}
        super().__init__(params)
        self._server = server
        self._params = params
        self._raw_options: dict[str, Any] = params.get("OPTIONS") or {}
        self._custom_key_func = "KEY_FUNCTION" in params
        if not self._custom_key_func:
            self.key_func = self._separated_key
        # (event loop, options, its async client) of the last async call.
        self._amemo: tuple[Any, Any, Any] | None = None

    def reset(self) -> None:
        """Forget everything derived from settings (``override_settings``): every
        cached property of the class, so none can be missed."""
        for klass in type(self).__mro__:
            for name, value in vars(klass).items():
                if isinstance(value, cached_property):
                    self.__dict__.pop(name, None)
        self._amemo = None

    # -- configuration and per-process state, resolved on first use ----------------------

    @cached_property
    def options(self) -> options_module.BackendOptions:
        return options_module.resolve(self._server, self._raw_options)

    @cached_property
    def key_separator(self) -> str:
        return self.options.key_separator

    @cached_property
    def cluster(self) -> bool:
        """Whether this alias is a Redis Cluster (multi-key commands split by slot)."""
        return self.options.mode == "cluster"

    @cached_property
    def alias(self) -> str:
        """The ``CACHES`` alias this backend was configured under."""
        explicit = self._raw_options.get("ALIAS")
        if explicit:
            return str(explicit)
        for name, entry in getattr(settings, "CACHES", {}).items():
            if entry.get("LOCATION", "") == self._server and all(
                entry.get(k) == v for k, v in self._params.items() if k != "TIMEOUT"
            ):
                return str(name)
        return "default"

    @cached_property
    def runtime(self) -> Runtime:
        """This alias's breaker, counters and fallback, shared by every thread."""
        return Runtime(f"{self.alias}@{self.options.safe_location}", self.alias, self.options)

    @cached_property
    def executor(self) -> Executor:
        opts = self.options
        return Executor(
            self.runtime,
            alias=self.alias,
            location=opts.safe_location,
            strict=opts.strict,
            cluster=self.cluster,
            client=lambda: self._redis,
            aclient=self._aclient,
        )

    @cached_property
    def _redis(self) -> Any:
        client = connection.get_client(self.options)
        self._start_stats(latest=True)
        return client

    def _start_stats(self, latest: bool = False) -> None:
        """Counts are flushed by a thread through a backend's executor (on the sync
        client, built in that thread if this process only used the async one); the
        latest backend built for the alias is the one whose settings count."""
        counters = self.runtime.counters
        if latest or counters.flush_target is None:
            counters.flush_target = (self.executor, self.internal_key("stats", self.alias))
        counts.registry.start_flusher(self.options.stats_flush_interval)

    def _aclient(self) -> Any:
        """The redis.asyncio client of this alias in the running loop (made on first use)."""
        loop = asyncio.get_running_loop()
        memo = self._amemo
        options = self.options
        if memo is not None and memo[0]() is loop and memo[1] is options:
            return memo[2]
        client = async_connection.get_async_client(options)
        self._amemo = (weakref.ref(loop), options, client)
        if self.runtime.counters.flush_target is None:
            self._start_stats()
        return client

    @cached_property
    def codec(self) -> Codec:
        """How values are encoded (serializer, compressor) for this alias."""
        opts = self.options
        serializer = load_serializer(opts.serializer, opts.raw)
        compressor = (
            load_compressor(opts.compressor, opts.compress_min_length, opts.raw)
            if opts.compressor
            else None
        )
        return Codec(serializer, compressor, opts.signing_keys)

    @cached_property
    def local_tier(self) -> LocalTier | None:
        """The coherent in-process read tier (``OPTIONS["LOCAL_TIER"]``), or None."""
        settings_ = self.options.local_tier
        if settings_ is None:
            return None
        head = self._key_head
        if head is None:
            if settings_.key_prefixes:
                raise ImproperlyConfigured(
                    "CACHES OPTIONS LOCAL_TIER KEY_PREFIXES needs the default KEY_FUNCTION"
                )
            prefixes: tuple[str, ...] = ()
        else:
            wanted = sorted(head + p for p in settings_.key_prefixes) or [head]
            kept: list[str] = []
            for prefix in wanted:  # BCAST prefixes must not overlap
                if not any(prefix.startswith(other) for other in kept):
                    kept.append(prefix)
            prefixes = tuple(kept)
        runtime = self.runtime
        runtime.local_tier = local_tier.tier_for(runtime.name, self.options, settings_, prefixes)
        return runtime.local_tier  # type: ignore[no-any-return]

    @cached_property
    def keys_manager(self) -> KeyManager:
        """Builds keys from parts with this alias's separator (see ``KeyManager``)."""
        return KeyManager(self)

    # -- what operations share: decoding, local copies -----------------------------------

    def read_many(
        self, keys: list[Any], fulls: list[str], values: list[bytes | None]
    ) -> tuple[dict[Any, Any], list[tuple[str, CorruptValue]]]:
        """Decode an MGET reply: found values by user key, and the unreadable ones."""
        found, errors = self.codec.decode_many(keys, values)
        corrupt = [(fulls[i], exc) for i, exc in errors]
        counters = self.runtime.counters
        counters.hits += len(found)
        counters.misses += len(keys) - len(found)
        return found, corrupt

    def decode(self, raw: bytes, key: str = "") -> Any:
        """Decode a value read by a feature's own command; unreadable values are
        logged, counted and raise ``CorruptValue`` (the caller treats it as a miss)."""
        try:
            return self.codec.decode(raw)
        except CorruptValue as exc:
            self.runtime.counters.corrupt += 1
            self.log_corrupt(key, exc)
            raise

    def log_corrupt(self, key: str, exc: CorruptValue) -> None:
        logger.warning("cache %r: dropping unreadable value at %r: %s", self.alias, key, exc)

    def fallback_get(self, full: str, default: Any) -> Any:
        fallback = self.runtime.fallback
        if fallback is None:
            return default
        raw = fallback.get(full, _MISSING)
        if raw is _MISSING:
            return default
        self.runtime.counters.fallback_hits += 1
        return self.codec.decode(raw)

    def fallback_get_many(self, keys: list[Any], fulls: list[str]) -> dict[Any, Any]:
        if self.runtime.fallback is None:
            return {}
        local = {k: self.fallback_get(f, _MISSING) for k, f in zip(keys, fulls, strict=True)}
        return {k: v for k, v in local.items() if v is not _MISSING}

    def forget_local(self, fulls: Iterable[str]) -> None:
        """Drop keys this process changed in Redis from its in-process copies."""
        fallback = self.runtime.fallback
        local = self.local_tier
        if fallback is None and local is None:
            return
        fulls = list(fulls)
        if fallback is not None:
            for full in fulls:
                fallback.delete(full)
        if local is not None:
            local.forget_many(fulls)

    def forget_tier(self, fulls: Iterable[str]) -> None:
        """Drop keys this process wrote from its local tier only (a write that went to
        the local fallback instead must stay there)."""
        if self.local_tier is not None:
            self.local_tier.forget_many(list(fulls))

    def forget_all_local(self) -> None:
        """Drop every in-process copy (``clear``)."""
        if self.runtime.fallback is not None:
            self.runtime.fallback.clear()
        if self.local_tier is not None:
            self.local_tier.flush()

    # -- running operations: the public face for features ---------------------------------

    def run(self, steps: Steps[Any], operation: str) -> Any:
        """Run an operation described as steps (see ``execution``) on the sync client,
        under this alias's failure policy. Features use this for their own commands."""
        return self.executor.run(steps, operation)

    async def arun(self, steps: Steps[Any], operation: str) -> Any:
        """``run`` on the running loop's async client."""
        return await self.executor.arun(steps, operation)

    # -- the Django cache API and django-redis's extras, each written once ---------------

    get, aget = twin(reads.get)
    get_many, aget_many = twin(reads.get_many)
    has_key, ahas_key = twin(reads.has_key)
    ttl, attl = twin(reads.ttl)
    pttl, apttl = twin(reads.pttl)
    keys, akeys = twin(reads.keys)
    set, aset = twin(writes.set_)  # django-redis's contract: returns bool
    add, aadd = twin(writes.add)
    set_many, aset_many = twin(writes.set_many)
    delete, adelete = twin(writes.delete)
    delete_many, adelete_many = twin(writes.delete_many)  # type: ignore[assignment]  # a count
    touch, atouch = twin(writes.touch)
    expire, aexpire = twin(writes.expire)
    pexpire, apexpire = twin(writes.pexpire)
    expire_at, aexpire_at = twin(writes.expire_at)
    pexpire_at, apexpire_at = twin(writes.pexpire_at)
    persist, apersist = twin(writes.persist)
    incr, aincr = twin(counters.incr)
    decr, adecr = twin(counters.decr)
    incr_version, aincr_version = twin(counters.incr_version)
    decr_version, adecr_version = twin(counters.decr_version)
    clear, aclear = twin(keyspace.clear)  # type: ignore[assignment]  # returns bool
    delete_pattern, adelete_pattern = twin(keyspace.delete_pattern)
    invalidate_prefix, ainvalidate_prefix = twin(keyspace.invalidate_prefix)
    invalidate_tags, ainvalidate_tags = twin(keyspace.invalidate_tags)
    index_size, aindex_size = twin(keyspace.index_size)
    _scan_keys, _ascan_keys = twin(keyspace.scan_keys, "iter_keys")
    primaries_info, aprimaries_info = twin(server.primaries_info)
    browse_keys, abrowse_keys = twin(browse.browse_keys)

    def iter_keys(
        self,
        search: str,
        itersize: int | None = None,
        client: Any = None,
        version: int | None = None,
    ) -> Iterator[str]:
        """User keys matching ``search``, via SCAN on every primary."""
        yield from self._scan_keys(search, itersize, version, client=client)

    async def aiter_keys(
        self,
        search: str,
        itersize: int | None = None,
        client: Any = None,
        version: int | None = None,
    ) -> AsyncIterator[str]:
        for key in await self._ascan_keys(search, itersize, version, client=client):
            yield key

    get_or_set, aget_or_set = twin(_get_or_set)

    @cached_property
    def flight(self) -> Any:
        """The single-flight module (a feature above the backend: found by name)."""
        return import_module(SINGLE_FLIGHT)

    def close(self, **kwargs: Any) -> None:
        """Connections are pooled per process and outlive requests."""

    async def aclose(self, **kwargs: Any) -> None:
        """Connections are pooled per event loop and closed with it."""

    def lock(self, key: Any, version: int | None = None, *, client: Any = None, **kw: Any) -> Any:
        """A redis-py ``Lock`` on the cache key ``key`` (``timeout``, ``sleep``, ``blocking``,
        ``blocking_timeout``, ``thread_local`` as redis-py's)."""
        return (client or self._redis).lock(self.make_key(key, version), **kw)

    def alock(self, key: Any, version: int | None = None, **kw: Any) -> Any:
        """A redis.asyncio ``Lock`` on the cache key ``key`` (``async with cache.alock(k):``)."""
        return self._aclient().lock(self.make_key(key, version), **kw)

    def get_client(self, key: Any = None, write: bool = True) -> Any:
        """The shared redis-py client (``Redis`` or ``RedisCluster``) of this alias."""
        return self._redis

    # -- statistics and health -------------------------------------------------------------

    health, ahealth = twin(server.health)
    stats, astats = twin(server.stats)
    server_facts, aserver_facts = twin(server.server_facts)

    def flush_stats(self) -> bool:
        """Add this process's pending counts to Redis now (tests, shutdown)."""
        self._start_stats()
        return counts.flush(self.runtime.counters)
