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
from django.utils.module_loading import import_string

from .. import stats as stats_module
from ..exceptions import CorruptValue
from ..keys import KeyManager, encodable, glob_escape, shorten
from ..ttl import parse_ttl, policy
from . import async_connection, connection, indexes, local_tier
from . import options as options_module
from .codec import Codec, load_compressor, load_serializer
from .execution import Executor, Steps
from .local_tier import LocalTier
from .ops import counters, keyspace, reads, server, twin, writes
from .runtime import Runtime
from .structures import StructuresMixin

logger = logging.getLogger("django_creator_cache")

_MISSING = object()
# The module that implements get_or_set (single flight), a layer above the backend.
SINGLE_FLIGHT = "django_creator_cache.cache_aside.single_flight"
# Undeclared prefixes already warned about in this process.
_warned_roots: set[str] = set()


class RedisCache(StructuresMixin, BaseCache):  # type: ignore[misc]
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
        self._start_stats(client)
        return client

    def _start_stats(self, client: Any) -> None:
        counters = self.runtime.counters
        if counters.flush_target is None or not isinstance(client, connection.LazyClient):
            counters.flush_target = (client, self.internal_key("stats", self.alias))
        stats_module.registry.start_flusher(self.options.stats_flush_interval)

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
            # Statistics are flushed by a thread with the sync client, built there if need be.
            self._start_stats(connection.LazyClient(options))
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
        return Codec(serializer, compressor)

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
        return local_tier.tier_for(self.runtime.name, self.options, settings_, prefixes)

    @cached_property
    def keys_manager(self) -> KeyManager:
        """Builds keys from parts with this alias's separator (see ``KeyManager``)."""
        return KeyManager(self)

    # -- keys ------------------------------------------------------------------------------

    @cached_property
    def _internal_head(self) -> str:
        sep = self.key_separator
        return f"{self.key_prefix}{sep}dcc{sep}" if self.key_prefix else f"dcc{sep}"

    def internal_name(self, *parts: Any) -> str:
        """A key name (before ``make_key``) in the package's own namespace, for keys that
        must share the user key's version and hash tag: ``dcc:lock:<key>``."""
        sep = self.key_separator
        return f"dcc{sep}" + sep.join(str(p) for p in parts)

    def internal_key(self, *parts: str) -> str:
        """The Redis key of the package's own bookkeeping (``<KEY_PREFIX>:dcc:<parts>``):
        statistics, history, index records. The one place such keys are named."""
        return self._internal_head + self.key_separator.join(parts)

    def _separated_key(self, key: Any, key_prefix: str, version: Any) -> str:
        # Same text as Django's default key function, with our separator.
        sep = self.key_separator
        return f"{key_prefix}{sep}{version}{sep}{key!s}"

    @cached_property
    def _key_head(self) -> str | None:
        """``prefix:version:`` of the default key function, None with a custom one."""
        if self._custom_key_func:
            return None
        sep = self.key_separator
        return f"{self.key_prefix}{sep}{self.version}{sep}"

    @cached_property
    def _max_key_length(self) -> int:
        return self.options.max_key_length

    def make_key(self, key: Any, version: int | None = None) -> str:
        """Prefix and version ``key``; keys past ``MAX_CACHE_KEY_LENGTH`` are hashed."""
        head = self._key_head
        if head is not None and version is None:
            full = f"{head}{key!s}"
        else:
            version = self.version if version is None else version
            full = str(self.key_func(key, self.key_prefix, version))
        if len(full) > self._max_key_length or not full.isascii():
            return self._sendable(full)
        return full

    def make_keys(self, keys: list[Any], version: int | None) -> list[str]:
        """``make_key`` for many keys (the bulk operations' hot loop, inlined)."""
        head = self._key_head
        if head is None or version is not None:
            return [self.make_key(k, version) for k in keys]
        limit = self._max_key_length
        fulls = [f"{head}{k!s}" for k in keys]
        return [f if len(f) <= limit and f.isascii() else self._sendable(f) for f in fulls]

    def _sendable(self, full: str) -> str:
        """A key Redis can take: valid UTF-8, no longer than the limit."""
        full = encodable(full)
        if len(full) > self._max_key_length:
            return shorten(full, self._max_key_length)
        return full

    def make_and_validate_key(self, key: Any, version: int | None = None) -> str:
        # Any key is valid here: long ones are hashed, Unicode is fine.
        return self.make_key(key, version)

    def validate_key(self, key: Any) -> None:
        """Nothing to validate: Redis accepts any key, long ones are hashed."""

    def make_pattern(
        self, pattern: str, version: int | None = None, prefix: str | None = None
    ) -> str:
        """A SCAN glob for ``pattern`` under this alias's prefix and version."""
        prefix = self.key_prefix if prefix is None else prefix
        version_part = self.version if version is None else version
        return str(self.key_func(pattern, glob_escape(prefix), glob_escape(str(version_part))))

    def reverse_key(self, key: str) -> str:
        """The user key of a full Redis key (inverse of the default key function)."""
        path = self._raw_options.get("REVERSE_KEY_FUNCTION") or self._params.get(
            "REVERSE_KEY_FUNCTION"
        )
        if path:
            return str(import_string(path)(key))
        return key.split(self.key_separator, 2)[-1]

    def delete_key(self, key: Any, version: int | None, prefix: str | None) -> str:
        """The full key ``delete`` removes (``prefix`` replaces the alias's ``KEY_PREFIX``)."""
        if prefix is None:
            return self.make_key(key, version)
        return shorten(
            str(self.key_func(key, prefix, self.version if version is None else version)),
            self._max_key_length,
        )

    def clear_glob(self) -> str | None:
        """What ``clear`` deletes: a glob under ``KEY_PREFIX``, or None for the whole database."""
        if self.key_prefix:
            return f"{glob_escape(self.key_prefix)}{glob_escape(self.key_separator)}*"
        return None

    def px(self, timeout: Any) -> int | None:
        """Django timeout (seconds, None, DEFAULT_TIMEOUT) as milliseconds."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        if not isinstance(timeout, int | float):
            timeout = parse_ttl(timeout)
            if timeout is None:
                return None
        ms = int(timeout * 1000)
        return 1 if ms == 0 and timeout > 0 else ms

    # -- invalidation indexes ------------------------------------------------------------

    @cached_property
    def _index_head(self) -> str:
        return f"{self.key_prefix}{self.key_separator}" if self.key_prefix else ""

    @cached_property
    def _tracked_roots(self) -> frozenset[str]:
        roots = self.options.invalidation_prefixes
        return frozenset((roots,) if isinstance(roots, str) else roots)

    def tracks_prefix(self, prefix: str) -> bool:
        """Whether writes under ``prefix`` are indexed for ``invalidate_prefix``.

        Top-level prefixes are declared in ``OPTIONS["INVALIDATION_PREFIXES"]``
        (``"*"`` for all) or with ``track_prefixes()``; ``invalidate_on`` and
        ``cache_response`` declare theirs. Others cost a plain ``SET``.
        """
        if not self.options.prefix_depth:
            return False
        root = str(prefix).split(self.key_separator, 1)[0]
        roots = self._tracked_roots
        return root in roots or "*" in roots or root in indexes.declared_roots

    def indexes_of(self, key: Any, tags: Iterable[str] | None) -> list[str]:
        """Index keys a write of ``key`` joins: one per tracked prefix, one per tag."""
        sep = self.key_separator
        text = key if type(key) is str else str(key)
        names = []
        if sep in text and self.tracks_prefix(text):
            head = self._index_head
            names = [
                indexes.index_key(head, sep, indexes.PREFIX, prefix)
                for prefix in indexes.ancestors(text, sep, self.options.prefix_depth)
            ]
        if tags:
            names += self.tag_indexes(tags)
        return names

    def index_key(self, kind: str, name: str) -> str:
        """The index key of a prefix (``indexes.PREFIX``) or a tag (``indexes.TAG``)."""
        return indexes.index_key(self._index_head, self.key_separator, kind, name)

    def prefix_index(self, prefix: str) -> str:
        """The index key of ``prefix``, after checking it can be invalidated."""
        sep = self.key_separator
        prefix = str(prefix).rstrip(sep)
        if not prefix:
            raise ValueError("an empty prefix would be everything: use clear()")
        root = prefix.split(sep, 1)[0]
        if not self.tracks_prefix(prefix) and root not in _warned_roots:
            # Writers in other processes may track it (a view module this process
            # never imported); say so once rather than refuse.
            _warned_roots.add(root)
            logger.warning(
                "cache %r: prefix %r is not declared in this process; entries are only "
                "invalidated if the processes that write them declare it "
                "(OPTIONS['INVALIDATION_PREFIXES'] or track_prefixes() at start-up)",
                self.alias,
                root,
            )
        depth = self.options.prefix_depth
        if prefix.count(sep) + 1 > depth:
            raise ValueError(
                f"prefix {prefix!r} is deeper than PREFIX_DEPTH={depth}; "
                "raise PREFIX_DEPTH or use delete_pattern()"
            )
        return self.index_key(indexes.PREFIX, prefix)

    def tag_indexes(self, tags: Iterable[str]) -> list[str]:
        return [self.index_key(indexes.TAG, str(t)) for t in tags]

    # -- what operations share: decoding, local copies -----------------------------------

    def read(self, raw: bytes) -> Any:
        """Count a hit and decode ``raw``; raises ``CorruptValue``."""
        self.runtime.counters.hits += 1
        return self.codec.decode(raw)

    def read_many(
        self, keys: list[Any], fulls: list[str], values: list[bytes | None]
    ) -> tuple[dict[Any, Any], list[tuple[str, CorruptValue]]]:
        """Decode an MGET reply: found values by user key, and the unreadable ones."""
        decode = self.codec.decode
        found: dict[Any, Any] = {}
        corrupt: list[tuple[str, CorruptValue]] = []
        for key, full, raw in zip(keys, fulls, values, strict=True):
            if raw is None:
                continue
            try:
                found[key] = decode(raw)
            except CorruptValue as exc:
                corrupt.append((full, exc))
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
    set, aset = twin(writes.set_)
    add, aadd = twin(writes.add)
    set_many, aset_many = twin(writes.set_many)
    delete, adelete = twin(writes.delete)
    delete_many, adelete_many = twin(writes.delete_many)
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
    clear, aclear = twin(keyspace.clear)
    delete_pattern, adelete_pattern = twin(keyspace.delete_pattern)
    invalidate_prefix, ainvalidate_prefix = twin(keyspace.invalidate_prefix)
    invalidate_tags, ainvalidate_tags = twin(keyspace.invalidate_tags)
    index_size, aindex_size = twin(keyspace.index_size)
    _scan_keys, _ascan_keys = twin(keyspace.scan_keys, "iter_keys")
    primaries_info, aprimaries_info = twin(server.primaries_info)

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

    def get_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        **flight: Any,
    ) -> Any:
        """Django's ``get_or_set``, computed once across processes; a hit is one GET.

        ``flight``: ``single_flight``, ``lock_timeout``, ``wait_timeout``,
        ``early_refresh``, ``jitter`` (see ``cache_aside.single_flight``).
        """
        return self._flight.get_or_set(self, key, default, timeout, version, **flight)

    async def aget_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        **flight: Any,
    ) -> Any:
        """``get_or_set`` natively async; ``default`` may return an awaitable."""
        return await self._flight.aget_or_set(self, key, default, timeout, version, **flight)

    @cached_property
    def _flight(self) -> Any:
        # Single flight is a feature above the backend: found by name, not imported here.
        return import_module(SINGLE_FLIGHT)

    def close(self, **kwargs: Any) -> None:
        """Connections are pooled per process and outlive requests."""

    async def aclose(self, **kwargs: Any) -> None:
        """Connections are pooled per event loop and closed with it."""

    def lock(
        self,
        key: Any,
        version: int | None = None,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        client: Any = None,
        thread_local: bool = True,
    ) -> Any:
        """A redis-py ``Lock`` on the cache key ``key``."""
        return (client or self._redis).lock(
            self.make_key(key, version),
            timeout=timeout,
            sleep=sleep,
            blocking=blocking,
            blocking_timeout=blocking_timeout,
            thread_local=thread_local,
        )

    def alock(
        self,
        key: Any,
        version: int | None = None,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        thread_local: bool = True,
    ) -> Any:
        """A redis.asyncio ``Lock`` on the cache key ``key`` (``async with cache.alock(k):``)."""
        return self._aclient().lock(
            self.make_key(key, version),
            timeout=timeout,
            sleep=sleep,
            blocking=blocking,
            blocking_timeout=blocking_timeout,
            thread_local=thread_local,
        )

    def get_client(self, key: Any = None, write: bool = True) -> Any:
        """The shared redis-py client (``Redis`` or ``RedisCluster``) of this alias."""
        return self._redis

    # -- statistics and health -------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Ping every primary with ``CACHE_HEALTH_TIMEOUT``, retrying
        ``CACHE_HEALTH_RETRIES`` times; returns healthy, latency_ms and error."""
        check = import_string("django_creator_cache.health.check")
        return check(self)  # type: ignore[no-any-return]

    def stats(self, server: bool = True) -> dict[str, Any]:
        """Site-wide counters for this alias, plus server facts when ``server``."""
        runtime = self.runtime
        key = self.internal_key("stats", self.alias)
        breaker = runtime.breaker

        def read_shared() -> Any:
            if breaker.opened_at:  # circuit open: no network, this process's counts only
                raise ConnectionError("circuit open")
            return self._redis.hgetall(key)

        fallback = runtime.fallback
        result: dict[str, Any] = {
            "alias": self.alias,
            "mode": self.options.mode,
            "location": self.options.safe_location,
            **stats_module.totals(runtime.counters, read_shared),
            "circuit": breaker.state,
            "local_fallback_entries": None if fallback is None else len(fallback),
            "local_tier": None if self.local_tier is None else self.local_tier.state(),
        }
        if server:
            result.update(import_string("django_creator_cache.health.server_facts")(self))
        return result

    def flush_stats(self) -> bool:
        """Add this process's pending counts to Redis now (tests, shutdown)."""
        _ = self._redis
        return stats_module.flush(self.runtime.counters)
