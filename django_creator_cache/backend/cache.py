"""``RedisCache``: the Django cache backend.

A thin front over a shared redis-py client. It builds keys (hashing long ones),
encodes values, counts statistics in memory and decides, in one place
(``_fail``), what a Redis failure means for the caller. Mode differences
(single, Sentinel, Cluster) live in ``modes``; Redis data-structure helpers
in ``structures``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import Any

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from redis.exceptions import NoScriptError, ResponseError

from .. import stats as stats_module
from ..cache_aside import single_flight
from ..exceptions import CacheUnavailable, CircuitOpen, CorruptValue
from ..invalidation import index
from ..keys import KeyManager, encodable, glob_escape, shorten
from ..ttl import parse_ttl, policy
from . import connection, local_tier
from . import options as options_module
from .async_api import AsyncMixin
from .circuit import CircuitBreaker, breaker_for
from .codec import Codec, load_compressor, load_serializer
from .fallback import LocalFallback
from .local_tier import MISSING as _LOCAL_MISS
from .local_tier import LocalTier
from .modes import SingleMode, mode_for
from .policy import CLUSTER_NODE_ERRORS, OUTAGE_ERRORS, REDIS_ERRORS, degrades
from .scripts import INCR_SCRIPT as _INCR_SCRIPT
from .structures import StructuresMixin

logger = logging.getLogger("django_creator_cache")

# Error replies of INCRBY meaning "not a 64-bit integer (any more)": decided in Python.
_NOT_A_64_BIT_INTEGER = ("not an integer", "out of range", "would overflow")
_MISSING = object()
# Local fallbacks per alias and process, shared by the per-thread backends.
_fallbacks: dict[str, LocalFallback] = {}
# Undeclared prefixes already warned about in this process.
_warned_roots: set[str] = set()
# Seconds between two warnings about the same failing alias in one process.
_WARN_EVERY = 60.0


# aset/adelete_many/aclear return what their sync twins return (django-redis's signatures).
class RedisCache(AsyncMixin, StructuresMixin, BaseCache):  # type: ignore[misc]
    """Django cache backend on Redis, Sentinel or Redis Cluster.

    The sync methods run on a redis-py client shared by the process; the async
    ones (``AsyncMixin``) on redis.asyncio clients of the running event loop.
    Both call the same pure helpers (keys, encoding, index building, failure
    policy), so they behave alike.
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
        # (event loop, its async client) of the last async call (see ``AsyncMixin``).
        self._amemo: tuple[Any, Any, Any] | None = None

    # -- configuration, resolved on first use ---------------------------------

    @cached_property
    def options(self) -> options_module.BackendOptions:
        return options_module.resolve(self._server, self._raw_options)

    @cached_property
    def key_separator(self) -> str:
        return self.options.key_separator

    @cached_property
    def _max_key_length(self) -> int:
        return self.options.max_key_length

    @cached_property
    def _redis(self) -> Any:
        client = connection.get_client(self.options)
        self._counters.flush_target = (client, self._stats_key)
        stats_module.registry.start_flusher(self.options.stats_flush_interval)
        return client

    @cached_property
    def _mode(self) -> SingleMode:
        return mode_for(self._redis)

    @cached_property
    def _codec(self) -> Codec:
        opts = self.options
        serializer = load_serializer(opts.serializer, opts.raw)
        compressor = (
            load_compressor(opts.compressor, opts.compress_min_length, opts.raw)
            if opts.compressor
            else None
        )
        return Codec(serializer, compressor, opts.signing_keys)

    @cached_property
    def _incr_script(self) -> Any:
        return self._redis.register_script(_INCR_SCRIPT)

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
    def _counters(self) -> stats_module.Counters:
        return stats_module.registry.counters(f"{self.alias}@{self.options.safe_location}")

    @cached_property
    def _breaker(self) -> CircuitBreaker:
        opts = self.options
        return breaker_for(
            f"{self.alias}@{opts.safe_location}",
            self.alias,
            opts.circuit_failures,
            opts.circuit_cooldown,
        )

    @cached_property
    def _fallback(self) -> LocalFallback | None:
        """The local LRU used while the circuit is open (``OPTIONS["LOCAL_FALLBACK"]``)."""
        opts = self.options
        if not opts.local_fallback:
            return None
        return _fallbacks.setdefault(
            f"{self.alias}@{opts.safe_location}", LocalFallback(opts.local_fallback_size)
        )

    @cached_property
    def _local(self) -> LocalTier | None:
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
        name = f"{self.alias}@{self.options.safe_location}"
        return local_tier.tier_for(name, self.options, settings_, prefixes)

    @cached_property
    def _index_head(self) -> str:
        return f"{self.key_prefix}{self.key_separator}" if self.key_prefix else ""

    @cached_property
    def _prefix_depth(self) -> int:
        return self.options.prefix_depth

    @cached_property
    def _take_script(self) -> Any:
        return self._redis.register_script(index.TAKE_SCRIPT)

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
        if not self._prefix_depth:
            return False
        root = str(prefix).split(self.key_separator, 1)[0]
        roots = self._tracked_roots
        return root in roots or "*" in roots or root in index.declared_roots

    def _indexes(self, key: Any, tags: Iterable[str] | None) -> list[str]:
        """Index keys a write of ``key`` joins: one per tracked prefix, one per tag."""
        sep = self.key_separator
        text = key if type(key) is str else str(key)
        names = []
        if sep in text and self.tracks_prefix(text):
            head = self._index_head
            names = [
                index.index_key(head, sep, index.PREFIX, prefix)
                for prefix in index.ancestors(text, sep, self._prefix_depth)
            ]
        if tags:
            head = self._index_head
            names += [index.index_key(head, sep, index.TAG, str(tag)) for tag in tags]
        return names

    @cached_property
    def _stats_key(self) -> str:
        sep = self.key_separator
        head = f"{self.key_prefix}{sep}" if self.key_prefix else ""
        return f"{head}dcc{sep}stats{sep}{self.alias}"

    @cached_property
    def keys_manager(self) -> KeyManager:
        """Builds keys from parts with this alias's separator (see ``KeyManager``)."""
        return KeyManager(self)

    # -- keys and timeouts -----------------------------------------------------

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

    def _make_keys(self, keys: list[Any], version: int | None) -> list[str]:
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
        """A SCAN/KEYS glob for ``pattern`` under this alias's prefix and version."""
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

    def _px(self, timeout: Any) -> int | None:
        """Django timeout (seconds, None, DEFAULT_TIMEOUT) as milliseconds."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        if not isinstance(timeout, int | float):
            timeout = parse_ttl(timeout)
            if timeout is None:
                return None
        px = int(timeout * 1000)
        return 1 if px == 0 and timeout > 0 else px

    # -- failures --------------------------------------------------------------

    def _fail(self, operation: str, exc: BaseException) -> None:
        """Count and log a Redis failure; raise only in strict mode.

        Connection failures and timeouts feed the circuit breaker, which logs
        one warning per outage. Other error replies mean Redis did answer: they
        are logged at most once a minute and count as a sign of life.

        On a Cluster a connection error or timeout concerns one node: redis-py
        has just re-read the slot map from the others, so the cluster answers.
        It must not open the alias-wide circuit and black out the healthy
        primaries while that node's replica takes over; a cluster that cannot
        be reached at all raises ``RedisClusterException``, which does.
        """
        counters = self._counters
        counters.errors += 1
        one_node = self.options.mode == "cluster" and isinstance(exc, CLUSTER_NODE_ERRORS)
        if isinstance(exc, OUTAGE_ERRORS) and not one_node:
            counters.reconnects += 1
            if self._breaker.record_failure(exc, self.options.safe_location):
                counters.outages += 1
        else:
            if self._breaker.failures:
                self._recovered()
            now = time.monotonic()
            if now - counters.last_warning > _WARN_EVERY:
                counters.last_warning = now
                logger.warning(
                    "cache %r (%s): error reply during %s: %s",
                    self.alias,
                    self.options.safe_location,
                    operation,
                    exc,
                )
        if self.options.strict:
            raise CacheUnavailable(self.alias, operation, exc) from exc

    def _blocked(self, operation: str) -> bool:
        """Whether the circuit is open and this call must not touch the network."""
        if self._breaker.allow():
            return False
        self._counters.short_circuits += 1
        if self.options.strict:
            raise CacheUnavailable(self.alias, operation, CircuitOpen("circuit open"))
        return True

    def _recovered(self) -> None:
        """A call succeeded after failures: close the circuit, drop the local fallback."""
        if self._breaker.record_success() and self._fallback is not None:
            self._fallback.clear()

    def _fallback_get(self, key: str, default: Any) -> Any:
        fallback = self._fallback
        if fallback is None:
            return default
        raw = fallback.get(key, _MISSING)
        if raw is _MISSING:
            return default
        self._counters.fallback_hits += 1
        return self._codec.decode(raw)

    def _corrupt_seen(self, key: str, exc: CorruptValue) -> None:
        """A value we cannot read is a miss: log it and count it (the caller deletes it)."""
        self._counters.corrupt += 1
        logger.warning("cache %r: dropping unreadable value at %r: %s", self.alias, key, exc)

    def _corrupt(self, key: str, exc: CorruptValue) -> None:
        """A value we cannot read is a miss: log it, count it, delete it."""
        self._corrupt_seen(key, exc)
        try:
            self._redis.delete(key)
        except REDIS_ERRORS as del_exc:
            self._fail("delete", del_exc)

    # -- pure parts shared by the sync and the async methods ---------------------

    def _read(self, raw: bytes | None, default: Any) -> Any:
        """Count one GET reply and decode it; raises ``CorruptValue`` (the caller deletes)."""
        if raw is None:
            self._counters.misses += 1
            return default
        self._counters.hits += 1
        return self._codec.decode(raw)

    def _read_many(
        self, keys: list[Any], fulls: list[str], values: list[bytes | None]
    ) -> tuple[dict[Any, Any], list[tuple[str, CorruptValue]]]:
        """Decode an MGET reply: found values by user key, and the unreadable ones."""
        decode = self._codec.decode
        found: dict[Any, Any] = {}
        corrupt: list[tuple[str, CorruptValue]] = []
        for key, full, raw in zip(keys, fulls, values, strict=True):
            if raw is None:
                continue
            try:
                found[key] = decode(raw)
            except CorruptValue as exc:
                self._corrupt_seen(full, exc)
                corrupt.append((full, exc))
        counters = self._counters
        counters.hits += len(found)
        counters.misses += len(keys) - len(found)
        return found, corrupt

    def _fallback_get_many(self, keys: list[Any], fulls: list[str]) -> dict[Any, Any]:
        local = {k: self._fallback_get(f, _MISSING) for k, f in zip(keys, fulls, strict=True)}
        return {k: v for k, v in local.items() if v is not _MISSING}

    def _set_plan(
        self, key: Any, value: Any, timeout: Any, version: int | None, tags: Iterable[str] | None
    ) -> tuple[list[str], str, bytes | int, int | None]:
        """(indexes to join, full key, encoded value, PX) of a ``set``; raises on bad values."""
        indexes = self._indexes(key, tags)
        full = self.make_key(key, version)
        return indexes, full, self._codec.encode(value, full), self._px(timeout)

    def _set_blocked(self, full: str, encoded: bytes | int, px: int | None, nx: bool) -> None:
        """A ``set`` while the circuit is open: into the local fallback, if configured."""
        fallback = self._fallback
        if fallback is not None and not (nx and fallback.get(full) is not None):
            fallback.set(full, encoded, px)

    @staticmethod
    def _set_command(
        full: str, encoded: bytes | int, px: int | None, nx: bool, xx: bool
    ) -> list[Any]:
        args: list[Any] = ["SET", full, encoded]
        if px is not None:
            args += ("PX", px)
        if nx:
            args.append("NX")
        if xx:
            args.append("XX")
        return args

    def _set_many_plan(
        self, data: dict[Any, Any], timeout: Any, version: int | None
    ) -> tuple[int | None, list[str], dict[str, bytes | int]]:
        """(PX, full keys, encoded values by full key) of a ``set_many``."""
        px = self._px(timeout)
        encode = self._codec.encode
        fulls = self._make_keys(list(data), version)
        encoded = {full: encode(v, full) for full, v in zip(fulls, data.values(), strict=True)}
        return px, fulls, encoded

    def _queue_set_many(
        self,
        pipe: Any,
        data: dict[Any, Any],
        fulls: list[str],
        encoded: dict[str, bytes | int],
        px: int | None,
        tags: list[str],
    ) -> None:
        """Queue a ``set_many`` (index registrations first) on a sync or async pipeline."""
        for user_key, full in zip(data, fulls, strict=True):
            indexes = self._indexes(user_key, tags)
            if indexes:
                index.register(pipe, indexes, full, px, self.key_separator)
        for full, value in encoded.items():
            if px is None:
                pipe.execute_command("SET", full, value)
            else:
                pipe.execute_command("SET", full, value, "PX", px)

    def _set_many_blocked(self, encoded: dict[str, bytes | int], px: int | None) -> None:
        if self._fallback is not None:
            for full, value in encoded.items():
                self._fallback.set(full, value, px)

    def _delete_key(self, key: Any, version: int | None, prefix: str | None) -> str:
        """The full key ``delete`` removes (``prefix`` replaces the alias's ``KEY_PREFIX``)."""
        if prefix is None:
            return self.make_key(key, version)
        return shorten(
            str(self.key_func(key, prefix, self.version if version is None else version)),
            self._max_key_length,
        )

    def _forget_local(self, fulls: Iterable[str]) -> None:
        """Drop keys this process deletes (or changes) from its in-process copies."""
        fallback = self._fallback
        local = self._local
        if fallback is None and local is None:
            return
        fulls = list(fulls)
        if fallback is not None:
            for full in fulls:
                fallback.delete(full)
        if local is not None:
            local.forget_many(fulls)

    def _wrote(self, full: str) -> None:
        """This process changed ``full`` in Redis: its local-tier copy (if any) goes."""
        local = self._local
        if local is not None:
            local.forget(full)

    def _forget_all_local(self) -> None:
        """Drop every in-process copy (``clear``)."""
        if self._fallback is not None:
            self._fallback.clear()
        if self._local is not None:
            self._local.flush()

    @staticmethod
    def _incr_failure(exc: ResponseError) -> str:
        """What an error reply to ``incr`` means: outage, wrongtype, big or other."""
        if isinstance(exc, OUTAGE_ERRORS):  # e.g. READONLY after a failover
            return "outage"
        text = str(exc)
        if text.startswith("WRONGTYPE"):
            return "wrongtype"
        if any(part in text for part in _NOT_A_64_BIT_INTEGER):
            return "big"
        return "other"

    def _incr_big_value(self, full: str, raw: bytes | None, delta: int) -> int:
        """The new value of a counter beyond 64 bits (stored as decimal text)."""
        if raw is None:
            raise ValueError(f"Key {full!r} not found")
        current = self._decode(full, raw, None)
        if type(current) is not int:
            raise TypeError(f"value of {full!r} is {type(current).__name__}, not an integer")
        return current + delta

    def _prefix_index(self, prefix: str) -> str:
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
        if prefix.count(sep) + 1 > self._prefix_depth:
            raise ValueError(
                f"prefix {prefix!r} is deeper than PREFIX_DEPTH={self._prefix_depth}; "
                "raise PREFIX_DEPTH or use delete_pattern()"
            )
        return index.index_key(self._index_head, sep, index.PREFIX, prefix)

    def _tag_indexes(self, tags: Iterable[str]) -> list[str]:
        sep = self.key_separator
        head = self._index_head
        return [index.index_key(head, sep, index.TAG, str(t)) for t in tags]

    def _clear_glob(self) -> str | None:
        """What ``clear`` deletes: a glob under ``KEY_PREFIX``, or None for the whole database."""
        if self.key_prefix:
            return f"{glob_escape(self.key_prefix)}{self.key_separator}*"
        return None

    def _decode(self, key: str, raw: bytes, default: Any) -> Any:
        try:
            return self._codec.decode(raw)
        except CorruptValue as exc:
            self._corrupt(key, exc)
            return default

    # -- the Django cache API --------------------------------------------------

    def get(
        self, key: Any, default: Any = None, version: int | None = None, client: Any = None
    ) -> Any:
        key = self.make_key(key, version)
        local = self._local
        if local is not None and client is None:
            return self._local_get(local, key, default)
        breaker = self._breaker
        if breaker.opened_at and self._blocked("get"):
            return self._fallback_get(key, default)
        try:
            raw = (client or self._redis).execute_command("GET", key)
        except REDIS_ERRORS as exc:
            self._fail("get", exc)
            return default
        if breaker.failures:
            self._recovered()
        try:
            return self._read(raw, default)
        except CorruptValue as exc:
            self._corrupt(key, exc)
            return default

    def _local_get(self, local: LocalTier, full: str, default: Any) -> Any:
        """``get`` through the local tier: a local hit, or one round trip that also
        reads the key's remaining life and keeps the value (unless invalidated meanwhile)."""
        raw = local.get(full)
        if raw is not _LOCAL_MISS:
            self._counters.local_hits += 1
            return self._codec.decode(raw)
        breaker = self._breaker
        if breaker.opened_at and self._blocked("get"):
            return self._fallback_get(full, default)
        token = local.reserve(full)
        try:
            raw, pttl = self._mode.fetch(full, token is not None)
        except REDIS_ERRORS as exc:
            local.fill(full, token, None, None)
            self._fail("get", exc)
            return default
        if breaker.failures:
            self._recovered()
        try:
            value = self._read(raw, default)
        except CorruptValue as exc:
            local.fill(full, token, None, None)
            self._corrupt(full, exc)
            return default
        local.fill(full, token, raw, pttl)
        return value

    def _local_hits(
        self, local: LocalTier, keys: list[Any], fulls: list[str]
    ) -> tuple[dict[Any, Any], list[Any], list[str]]:
        """Split a ``get_many`` into local hits and the keys to read from Redis."""
        found: dict[Any, Any] = {}
        rest_keys: list[Any] = []
        rest_fulls: list[str] = []
        decode = self._codec.decode
        for key, full, raw in zip(keys, fulls, local.get_many(fulls), strict=True):
            if raw is _LOCAL_MISS:
                rest_keys.append(key)
                rest_fulls.append(full)
            else:
                found[key] = decode(raw)
        self._counters.local_hits += len(found)
        return found, rest_keys, rest_fulls

    def _local_kept(
        self,
        local: LocalTier,
        keys: list[Any],
        fulls: list[str],
        tokens: list[Any],
        fetched: tuple[list[Any], list[Any]],
    ) -> tuple[dict[Any, Any], list[str]]:
        """Decode what ``get_many`` fetched, keep the readable values locally."""
        values, pttls = fetched
        found, corrupt = self._read_many(keys, fulls, values)
        bad = {full for full, _ in corrupt}
        for full, token, raw, pttl in zip(fulls, tokens, values, pttls, strict=True):
            local.fill(full, token, None if full in bad else raw, pttl)
        return found, list(bad)

    def _local_get_many(
        self, local: LocalTier, keys: list[Any], fulls: list[str]
    ) -> dict[Any, Any]:
        found, keys, fulls = self._local_hits(local, keys, fulls)
        if not keys:
            return found
        breaker = self._breaker
        if breaker.opened_at and self._blocked("get_many"):
            return {**found, **self._fallback_get_many(keys, fulls)}
        tokens = [local.reserve(full) for full in fulls]
        try:
            fetched = self._mode.fetch_many(fulls)
        except REDIS_ERRORS as exc:
            for full, token in zip(fulls, tokens, strict=True):
                local.fill(full, token, None, None)
            self._fail("get_many", exc)
            return found
        if breaker.failures:
            self._recovered()
        got, bad = self._local_kept(local, keys, fulls, tokens, fetched)
        if bad:
            self._delete_corrupt(bad)
        found.update(got)
        return found

    def set(  # type: ignore[override]  # django-redis's signature: returns whether it stored
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
        nx: bool = False,
        xx: bool = False,
        tags: Iterable[str] | None = None,
    ) -> bool:
        """Store ``value``; ``tags`` (and the key's prefixes) make it invalidatable.

        One round trip: a plain ``SET``, or a pipeline that also records the key
        in its prefix and tag indexes.
        """
        indexes, key, encoded, px = self._set_plan(key, value, timeout, version, tags)
        breaker = self._breaker
        if breaker.opened_at and self._blocked("set"):
            self._set_blocked(key, encoded, px, nx)
            return False
        redis = client or self._redis
        try:
            if px is not None and px <= 0:
                if nx:
                    return not redis.exists(key)
                redis.delete(key)
                self._counters.deletes += 1
                return True
            args = self._set_command(key, encoded, px, nx, xx)
            if indexes:
                pipe = mode_for(redis).pipeline()
                index.register(pipe, indexes, key, px, self.key_separator)
                pipe.execute_command(*args)
                stored = bool(pipe.execute()[-1])
            else:
                stored = bool(redis.execute_command(*args))
        except REDIS_ERRORS as exc:
            self._fail("set", exc)
            return False
        finally:
            if self._local is not None:
                self._local.forget(key)
        if breaker.failures:
            self._recovered()
        self._counters.sets += 1
        return stored

    def add(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
        tags: Iterable[str] | None = None,
    ) -> bool:
        return self.set(key, value, timeout, version, client=client, nx=True, tags=tags)

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
        return single_flight.get_or_set(self, key, default, timeout, version, **flight)

    def get_many(
        self, keys: Iterable[Any], version: int | None = None, client: Any = None
    ) -> dict[Any, Any]:
        keys = list(keys)
        if not keys:
            return {}
        fulls = self._make_keys(keys, version)
        local = self._local
        if local is not None and client is None:
            return self._local_get_many(local, keys, fulls)
        breaker = self._breaker
        if breaker.opened_at and self._blocked("get_many"):
            return self._fallback_get_many(keys, fulls)
        mode = self._mode if client is None else mode_for(client)
        try:
            values = mode.mget(fulls)
        except REDIS_ERRORS as exc:
            self._fail("get_many", exc)
            return {}
        if breaker.failures:
            self._recovered()
        found, corrupt = self._read_many(keys, fulls, values)
        if corrupt:
            self._delete_corrupt([full for full, _ in corrupt])
        return found

    def _delete_corrupt(self, fulls: list[str]) -> None:
        try:
            self._mode.delete_keys(fulls)
        except REDIS_ERRORS as exc:
            self._fail("delete", exc)

    def set_many(
        self,
        data: dict[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
        tags: Iterable[str] | None = None,
    ) -> list[Any]:
        if not data:
            return []
        tags = list(tags or ())
        px, fulls, encoded = self._set_many_plan(data, timeout, version)
        breaker = self._breaker
        if breaker.opened_at and self._blocked("set_many"):
            self._set_many_blocked(encoded, px)
            return list(data)
        mode = self._mode if client is None else mode_for(client)
        try:
            if px is not None and px <= 0:
                mode.delete_keys(list(encoded))
                return []
            pipe = mode.pipeline()
            self._queue_set_many(pipe, data, fulls, encoded, px, tags)
            pipe.execute()
        except REDIS_ERRORS as exc:
            self._fail("set_many", exc)
            return list(data)
        finally:
            if self._local is not None:
                self._local.forget_many(fulls)
        if breaker.failures:
            self._recovered()
        self._counters.sets += len(encoded)
        return []

    def delete(
        self, key: Any, version: int | None = None, prefix: str | None = None, client: Any = None
    ) -> bool:
        full = self._delete_key(key, version, prefix)
        self._forget_local((full,))
        breaker = self._breaker
        if breaker.opened_at and self._blocked("delete"):
            return False
        try:
            deleted = bool((client or self._redis).delete(full))
        except REDIS_ERRORS as exc:
            self._fail("delete", exc)
            return False
        finally:
            self._wrote(full)
        if breaker.failures:
            self._recovered()
        self._counters.deletes += 1
        return deleted

    def delete_many(  # type: ignore[override]  # django-redis returns the count
        self, keys: Iterable[Any], version: int | None = None, client: Any = None
    ) -> int:
        full = self._make_keys(list(keys), version)
        if not full:
            return 0
        self._forget_local(full)
        breaker = self._breaker
        if breaker.opened_at and self._blocked("delete_many"):
            return 0
        mode = self._mode if client is None else mode_for(client)
        try:
            deleted = mode.delete_keys(full)
        except REDIS_ERRORS as exc:
            self._fail("delete_many", exc)
            return 0
        finally:
            if self._local is not None:
                self._local.forget_many(full)
        if breaker.failures:
            self._recovered()
        self._counters.deletes += len(full)
        return deleted

    @degrades(False)
    def has_key(self, key: Any, version: int | None = None, client: Any = None) -> bool:
        return bool((client or self._redis).exists(self.make_key(key, version)))

    @degrades(False)
    def touch(
        self,
        key: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
    ) -> bool:
        full = self.make_key(key, version)
        redis = client or self._redis
        px = self._px(timeout)
        try:
            if px is None:
                pipe = redis.pipeline(transaction=False)
                pipe.persist(full)
                pipe.exists(full)
                return bool(pipe.execute()[1])
            return bool(redis.pexpire(full, px))
        finally:
            self._wrote(full)  # the local copy's expiry is the key's old one

    def incr(
        self,
        key: Any,
        delta: int = 1,
        version: int | None = None,
        client: Any = None,
        ignore_key_check: bool = False,
    ) -> int:
        """Atomically add ``delta``, keeping the key's TTL; one round trip.

        Raises ``ValueError`` if the key is missing (unless ``ignore_key_check``),
        ``TypeError`` if its value is not an integer, and ``CacheUnavailable``
        when Redis cannot answer: a counter is never silently wrong.
        """
        full = self.make_key(key, version)
        breaker = self._breaker
        if breaker.opened_at and self._blocked("incr"):
            raise CacheUnavailable(self.alias, "incr", CircuitOpen("circuit open"))
        redis = client or self._redis
        try:
            if ignore_key_check:
                value = redis.execute_command("INCRBY", full, delta)
            else:
                script = self._incr_script
                try:
                    # EVALSHA directly: redis-py's Script.__call__ costs ~4 µs more.
                    value = redis.execute_command("EVALSHA", script.sha, 1, full, delta)
                except NoScriptError:  # server restarted or its scripts were flushed
                    value = script(keys=[full], args=[delta], client=redis)
        except ResponseError as exc:
            failure = self._incr_failure(exc)
            if failure == "outage":
                self._fail("incr", exc)
                raise CacheUnavailable(self.alias, "incr", exc) from exc
            if breaker.failures:
                self._recovered()
            if failure == "wrongtype":
                kind = redis.type(full)
                raise TypeError(f"value of {full!r} is a Redis {kind!r}, not a counter") from exc
            if failure == "other":
                self._counters.errors += 1
                raise CacheUnavailable(self.alias, "incr", exc) from exc
            return self._incr_big(full, delta, redis)
        except REDIS_ERRORS as exc:
            self._fail("incr", exc)
            raise CacheUnavailable(self.alias, "incr", exc) from exc
        finally:
            if self._local is not None:
                self._local.forget(full)
        if breaker.failures:
            self._recovered()
        if value is None:
            raise ValueError(f"Key {key!r} not found")
        return int(value)

    def _incr_big(self, full: str, delta: int, redis: Any) -> int:
        """Integers beyond 64 bits are stored as decimal text: add in Python."""
        value = self._incr_big_value(full, redis.get(full), delta)
        redis.set(full, value, keepttl=True)
        return value

    def decr(self, key: Any, delta: int = 1, version: int | None = None, client: Any = None) -> int:
        return self.incr(key, -delta, version=version, client=client)

    def incr_version(
        self, key: Any, delta: int = 1, version: int | None = None, client: Any = None
    ) -> int:
        """Move ``key`` to ``version + delta``, keeping its value and TTL."""
        version = self.version if version is None else version
        old = self.make_key(key, version)
        new = self.make_key(key, version + delta)
        if self._breaker.opened_at and self._blocked("incr_version"):
            raise CacheUnavailable(self.alias, "incr_version", CircuitOpen("circuit open"))
        redis = client or self._redis
        try:
            pipe = redis.pipeline(transaction=False)
            pipe.get(old)
            pipe.pttl(old)
            raw, pttl = pipe.execute()
            if raw is None:
                raise ValueError(f"Key {key!r} not found")
            if pttl is not None and pttl > 0:
                redis.set(new, raw, px=pttl)
            else:
                redis.set(new, raw)
            redis.delete(old)
        except REDIS_ERRORS as exc:
            self._fail("incr_version", exc)
            raise CacheUnavailable(self.alias, "incr_version", exc) from exc
        finally:
            self._forget_local((old, new))
        return version + delta

    # -- invalidation ------------------------------------------------------------

    def invalidate_prefix(self, prefix: str) -> int:
        """Make every entry under ``prefix`` (``campaigns`` covers ``campaigns:...``)
        a miss for every process; returns how many entries were deleted.

        Costs in proportion to those entries (no SCAN). Prefixes deeper than
        ``PREFIX_DEPTH`` separators are not tracked and raise ``ValueError``.
        """
        return self._invalidate([self._prefix_index(prefix)])

    def invalidate_tags(self, *tags: str) -> int:
        """Make every entry written with any of ``tags`` a miss; returns how many went."""
        return self._invalidate(self._tag_indexes(tags))

    @degrades(0)
    def _invalidate(self, indexes: list[str]) -> int:
        if self._fallback is not None:
            self._fallback.clear()
        redis = self._redis
        members: list[bytes] = []
        for name in indexes:
            members += index.take_members(self._take_script, redis, name, self.key_separator)
        if not members:
            return 0
        deleted = self._mode.delete_keys(index.unique(members))
        self._forget_members(members)
        self._counters.deletes += deleted
        return deleted

    def _forget_members(self, members: list[bytes]) -> None:
        """Invalidated keys leave this process's local tier at once (others: by message)."""
        if self._local is not None:
            self._local.forget_many(_text(m) for m in members)

    @degrades(False)
    def clear(self) -> bool:  # type: ignore[override]  # like Django's RedisCache.clear
        """Delete this alias's keys: only those under its ``KEY_PREFIX`` when it
        has one (safe on a shared server), else the whole database."""
        glob = self._clear_glob()
        if glob is None:
            self._mode.flush()
        else:
            self._delete_glob(glob, self._mode)
        self._forget_all_local()
        return True

    def close(self, **kwargs: Any) -> None:
        """Connections are pooled per process and outlive requests."""

    # -- Redis extras (django-redis compatible) ----------------------------------

    @degrades(0)
    def ttl(self, key: Any, version: int | None = None, client: Any = None) -> int | None:
        """Seconds to live; ``None`` if it never expires, 0 if missing."""
        t = int((client or self._redis).ttl(self.make_key(key, version)))
        return None if t == -1 else max(t, 0)

    @degrades(0)
    def pttl(self, key: Any, version: int | None = None, client: Any = None) -> int | None:
        """Milliseconds to live; ``None`` if it never expires, 0 if missing."""
        t = int((client or self._redis).pttl(self.make_key(key, version)))
        return None if t == -1 else max(t, 0)

    @degrades(False)
    def expire(
        self, key: Any, timeout: Any, version: int | None = None, client: Any = None
    ) -> bool:
        px = self._px(timeout)
        full = self.make_key(key, version)
        try:
            if px is None:
                return bool((client or self._redis).persist(full))
            return bool((client or self._redis).pexpire(full, px))
        finally:
            self._wrote(full)

    @degrades(False)
    def pexpire(
        self, key: Any, timeout: int, version: int | None = None, client: Any = None
    ) -> bool:
        full = self.make_key(key, version)
        try:
            return bool((client or self._redis).pexpire(full, timeout))
        finally:
            self._wrote(full)

    @degrades(False)
    def expire_at(
        self, key: Any, when: Any, version: int | None = None, client: Any = None
    ) -> bool:
        full = self.make_key(key, version)
        try:
            return bool((client or self._redis).expireat(full, when))
        finally:
            self._wrote(full)

    @degrades(False)
    def pexpire_at(
        self, key: Any, when: Any, version: int | None = None, client: Any = None
    ) -> bool:
        full = self.make_key(key, version)
        try:
            return bool((client or self._redis).pexpireat(full, when))
        finally:
            self._wrote(full)

    @degrades(False)
    def persist(self, key: Any, version: int | None = None, client: Any = None) -> bool:
        full = self.make_key(key, version)
        try:
            return bool((client or self._redis).persist(full))
        finally:
            self._wrote(full)

    @degrades(list)
    def keys(self, search: str, version: int | None = None, client: Any = None) -> list[str]:
        """User keys matching the glob ``search`` (KEYS on every primary: small databases only)."""
        mode = self._mode if client is None else mode_for(client)
        return [self.reverse_key(_text(k)) for k in mode.keys(self.make_pattern(search, version))]

    def iter_keys(
        self,
        search: str,
        itersize: int | None = None,
        client: Any = None,
        version: int | None = None,
    ) -> Iterator[str]:
        """User keys matching ``search``, via SCAN on every primary."""
        mode = self._mode if client is None else mode_for(client)
        pattern = self.make_pattern(search, version)
        try:
            for full in mode.scan(pattern, itersize):
                yield self.reverse_key(_text(full))
        except REDIS_ERRORS as exc:
            self._fail("iter_keys", exc)

    @degrades(0)
    def delete_pattern(
        self,
        pattern: str,
        version: int | None = None,
        prefix: str | None = None,
        client: Any = None,
        itersize: int | None = None,
    ) -> int:
        """Delete every key matching the glob ``pattern`` (SCAN, every primary)."""
        mode = self._mode if client is None else mode_for(client)
        return self._delete_glob(self.make_pattern(pattern, version, prefix), mode, itersize)

    def _delete_glob(self, glob: str, mode: SingleMode, itersize: int | None = None) -> int:
        deleted = 0
        batch: list[bytes] = []
        for full in mode.scan(glob, itersize or 1000):
            batch.append(full)
            if len(batch) >= 500:
                deleted += mode.delete_keys(batch)
                self._forget_local(_text(k) for k in batch)
                batch = []
        if batch:
            deleted += mode.delete_keys(batch)
            self._forget_local(_text(k) for k in batch)
        self._counters.deletes += deleted
        return deleted

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

    def get_client(self, key: Any = None, write: bool = True) -> Any:
        """The shared redis-py client (``Redis`` or ``RedisCluster``) of this alias."""
        return self._redis

    # -- statistics and health -------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Ping every primary with ``CACHE_HEALTH_TIMEOUT``, retrying
        ``CACHE_HEALTH_RETRIES`` times; returns healthy, latency_ms and error."""
        from ..health import check

        return check(self)

    def stats(self, server: bool = True) -> dict[str, Any]:
        """Site-wide counters for this alias, plus server facts when ``server``."""
        from ..health import server_facts

        counters = self._counters
        key = self._stats_key
        breaker = self._breaker

        def read_shared() -> Any:
            if breaker.opened_at:  # circuit open: no network, this process's counts only
                raise CircuitOpen("circuit open")
            return self._redis.hgetall(key)

        result: dict[str, Any] = {
            "alias": self.alias,
            "mode": self.options.mode,
            "location": self.options.safe_location,
            **stats_module.totals(counters, read_shared),
            "circuit": self._breaker.state,
            "local_fallback_entries": None if self._fallback is None else len(self._fallback),
            "local_tier": None if self._local is None else self._local.state(),
        }
        if server:
            result.update(server_facts(self))
        return result

    def flush_stats(self) -> bool:
        """Add this process's pending counts to Redis now (tests, shutdown)."""
        _ = self._redis
        return stats_module.flush(self._counters)


def _text(key: bytes | str) -> str:
    return key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else key
