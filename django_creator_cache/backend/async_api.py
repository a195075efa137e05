"""The async half of ``RedisCache``: every ``a*`` method, natively on redis.asyncio.

No thread hop: each method awaits a redis.asyncio client of the running event
loop (``async_connection``), and calls the same pure helpers as its sync twin
(keys, encoding, index building, counters, the failure policy ``_fail`` /
``_blocked`` / ``_recovered``), so a value written by one side reads the same
on the other and an outage degrades both alike. Only the I/O differs.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, cast

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from redis.exceptions import NoScriptError, ResponseError

from .. import stats as stats_module
from ..exceptions import CacheUnavailable, CircuitOpen, CorruptValue
from ..invalidation import index
from . import async_connection, connection
from .async_modes import AsyncSingleMode, async_mode_for
from .local_tier import MISSING as _LOCAL_MISS
from .policy import REDIS_ERRORS, adegrades
from .scripts import INCR_SCRIPT, INCR_SHA

if TYPE_CHECKING:
    from redis.exceptions import ResponseError as _ResponseError

    from .cache import RedisCache
    from .circuit import CircuitBreaker
    from .codec import Codec
    from .fallback import LocalFallback
    from .local_tier import LocalTier
    from .options import BackendOptions

_MISSING = object()
_TAKE_SHA = hashlib.sha1(index.TAKE_SCRIPT.encode()).hexdigest()


async def _script(client: Any, sha: str, source: str, keys: list[Any], args: list[Any]) -> Any:
    """EVALSHA, or EVAL when the server does not have the script (yet, or any more)."""
    try:
        return await client.execute_command("EVALSHA", sha, len(keys), *keys, *args)
    except NoScriptError:
        return await client.execute_command("EVAL", source, len(keys), *keys, *args)


class AsyncMixin:
    """Django's async cache API and the Redis extras, for ``RedisCache``."""

    if TYPE_CHECKING:
        # Provided by RedisCache (attributes, cached properties, the shared pure helpers).
        _amemo: tuple[Any, Any, Any] | None
        version: int

        @property
        def key_separator(self) -> str: ...
        @property
        def options(self) -> BackendOptions: ...
        @property
        def alias(self) -> str: ...
        @property
        def _counters(self) -> Any: ...
        @property
        def _breaker(self) -> CircuitBreaker: ...
        @property
        def _stats_key(self) -> str: ...
        @property
        def _local(self) -> LocalTier | None: ...
        @property
        def _codec(self) -> Codec: ...
        @property
        def _fallback(self) -> LocalFallback | None: ...

        def make_key(self, key: Any, version: int | None = None) -> str: ...
        def make_pattern(
            self, pattern: str, version: int | None = None, prefix: str | None = None
        ) -> str: ...
        def reverse_key(self, key: str) -> str: ...
        def _make_keys(self, keys: list[Any], version: int | None) -> list[str]: ...
        def _px(self, timeout: Any) -> int | None: ...
        def _fail(self, operation: str, exc: BaseException) -> None: ...
        def _blocked(self, operation: str) -> bool: ...
        def _recovered(self) -> None: ...
        def _fallback_get(self, key: str, default: Any) -> Any: ...
        def _fallback_get_many(self, keys: list[Any], fulls: list[str]) -> dict[Any, Any]: ...
        def _corrupt_seen(self, key: str, exc: CorruptValue) -> None: ...
        def _read(self, raw: bytes | None, default: Any) -> Any: ...
        def _read_many(
            self, keys: list[Any], fulls: list[str], values: list[bytes | None]
        ) -> tuple[dict[Any, Any], list[tuple[str, CorruptValue]]]: ...
        def _set_plan(
            self,
            key: Any,
            value: Any,
            timeout: Any,
            version: int | None,
            tags: Iterable[str] | None,
        ) -> tuple[list[str], str, bytes | int, int | None]: ...
        def _set_blocked(
            self, full: str, encoded: bytes | int, px: int | None, nx: bool
        ) -> None: ...
        @staticmethod
        def _set_command(
            full: str, encoded: bytes | int, px: int | None, nx: bool, xx: bool
        ) -> list[Any]: ...
        def _set_many_plan(
            self, data: dict[Any, Any], timeout: Any, version: int | None
        ) -> tuple[int | None, list[str], dict[str, bytes | int]]: ...
        def _queue_set_many(
            self,
            pipe: Any,
            data: dict[Any, Any],
            fulls: list[str],
            encoded: dict[str, bytes | int],
            px: int | None,
            tags: list[str],
        ) -> None: ...
        def _set_many_blocked(self, encoded: dict[str, bytes | int], px: int | None) -> None: ...
        def _delete_key(self, key: Any, version: int | None, prefix: str | None) -> str: ...
        def _forget_local(self, fulls: Iterable[str]) -> None: ...
        def _forget_all_local(self) -> None: ...
        def _wrote(self, full: str) -> None: ...
        def _forget_members(self, members: list[bytes]) -> None: ...
        def _local_hits(
            self, local: LocalTier, keys: list[Any], fulls: list[str]
        ) -> tuple[dict[Any, Any], list[Any], list[str]]: ...
        def _local_kept(
            self,
            local: LocalTier,
            keys: list[Any],
            fulls: list[str],
            tokens: list[Any],
            fetched: tuple[list[Any], list[Any]],
        ) -> tuple[dict[Any, Any], list[str]]: ...
        @staticmethod
        def _incr_failure(exc: _ResponseError) -> str: ...
        def _incr_big_value(self, full: str, raw: bytes | None, delta: int) -> int: ...
        def _prefix_index(self, prefix: str) -> str: ...
        def _tag_indexes(self, tags: Iterable[str]) -> list[str]: ...
        def _clear_glob(self) -> str | None: ...

    # -- the running loop's client ---------------------------------------------------

    def _aredis(self) -> Any:
        """The redis.asyncio client of this alias in the running loop (made on first use)."""
        loop = asyncio.get_running_loop()
        memo = self._amemo
        options = self.options
        if memo is not None and memo[0]() is loop and memo[1] is options:
            return memo[2]
        client = async_connection.get_async_client(options)
        self._amemo = (weakref.ref(loop), options, client)
        counters = self._counters
        if counters.flush_target is None:
            # Statistics are flushed by a thread with the sync client, built there if need be.
            counters.flush_target = (connection.LazyClient(self.options), self._stats_key)
            stats_module.registry.start_flusher(self.options.stats_flush_interval)
        return client

    def _amode(self, client: Any = None) -> AsyncSingleMode:
        return async_mode_for(client or self._aredis())

    async def _acorrupt(self, full: str, exc: CorruptValue) -> None:
        self._corrupt_seen(full, exc)
        await self._adelete_corrupt([full])

    async def _adelete_corrupt(self, fulls: list[str]) -> None:
        try:
            await self._amode().delete_keys(fulls)
        except REDIS_ERRORS as exc:
            self._fail("delete", exc)

    # -- the Django cache API ----------------------------------------------------------

    async def aget(
        self, key: Any, default: Any = None, version: int | None = None, client: Any = None
    ) -> Any:
        full = self.make_key(key, version)
        local = self._local
        if local is not None and client is None:
            return await self._alocal_get(local, full, default)
        breaker = self._breaker
        if breaker.opened_at and self._blocked("get"):
            return self._fallback_get(full, default)
        try:
            raw = await (client or self._aredis()).execute_command("GET", full)
        except REDIS_ERRORS as exc:
            self._fail("get", exc)
            return default
        if breaker.failures:
            self._recovered()
        try:
            return self._read(raw, default)
        except CorruptValue as exc:
            await self._acorrupt(full, exc)
            return default

    async def _alocal_get(self, local: LocalTier, full: str, default: Any) -> Any:
        """``_local_get``, natively async."""
        raw = local.get(full)
        if raw is not _LOCAL_MISS:
            self._counters.local_hits += 1
            return self._codec.decode(raw)
        breaker = self._breaker
        if breaker.opened_at and self._blocked("get"):
            return self._fallback_get(full, default)
        token = local.reserve(full)
        try:
            raw, pttl = await self._amode().fetch(full, token is not None)
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
            await self._acorrupt(full, exc)
            return default
        local.fill(full, token, raw, pttl)
        return value

    async def _alocal_get_many(
        self, local: LocalTier, keys: list[Any], fulls: list[str]
    ) -> dict[Any, Any]:
        """``_local_get_many``, natively async."""
        found, keys, fulls = self._local_hits(local, keys, fulls)
        if not keys:
            return found
        breaker = self._breaker
        if breaker.opened_at and self._blocked("get_many"):
            return {**found, **self._fallback_get_many(keys, fulls)}
        tokens = [local.reserve(full) for full in fulls]
        try:
            fetched = await self._amode().fetch_many(fulls)
        except REDIS_ERRORS as exc:
            for full, token in zip(fulls, tokens, strict=True):
                local.fill(full, token, None, None)
            self._fail("get_many", exc)
            return found
        if breaker.failures:
            self._recovered()
        got, bad = self._local_kept(local, keys, fulls, tokens, fetched)
        if bad:
            await self._adelete_corrupt(bad)
        found.update(got)
        return found

    async def aset(
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
        """``set``: one round trip, a plain ``SET`` or a pipeline with the index entries."""
        indexes, full, encoded, px = self._set_plan(key, value, timeout, version, tags)
        breaker = self._breaker
        if breaker.opened_at and self._blocked("set"):
            self._set_blocked(full, encoded, px, nx)
            return False
        redis = client or self._aredis()
        try:
            if px is not None and px <= 0:
                if nx:
                    return not await redis.exists(full)
                await redis.delete(full)
                self._counters.deletes += 1
                return True
            args = self._set_command(full, encoded, px, nx, xx)
            if indexes:
                pipe = async_mode_for(redis).pipeline()
                index.register(pipe, indexes, full, px, self.key_separator)
                pipe.execute_command(*args)
                stored = bool((await pipe.execute())[-1])
            else:
                stored = bool(await redis.execute_command(*args))
        except REDIS_ERRORS as exc:
            self._fail("set", exc)
            return False
        finally:
            self._wrote(full)
        if breaker.failures:
            self._recovered()
        self._counters.sets += 1
        return stored

    async def aadd(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
        tags: Iterable[str] | None = None,
    ) -> bool:
        return await self.aset(key, value, timeout, version, client=client, nx=True, tags=tags)

    async def aget_many(
        self, keys: Iterable[Any], version: int | None = None, client: Any = None
    ) -> dict[Any, Any]:
        keys = list(keys)
        if not keys:
            return {}
        fulls = self._make_keys(keys, version)
        local = self._local
        if local is not None and client is None:
            return await self._alocal_get_many(local, keys, fulls)
        breaker = self._breaker
        if breaker.opened_at and self._blocked("get_many"):
            return self._fallback_get_many(keys, fulls)
        try:
            values = await self._amode(client).mget(fulls)
        except REDIS_ERRORS as exc:
            self._fail("get_many", exc)
            return {}
        if breaker.failures:
            self._recovered()
        found, corrupt = self._read_many(keys, fulls, values)
        if corrupt:
            await self._adelete_corrupt([full for full, _ in corrupt])
        return found

    async def aset_many(
        self,
        data: dict[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
        tags: Iterable[str] | None = None,
    ) -> list[Any]:
        if not data:
            return []
        tag_list = list(tags or ())
        px, fulls, encoded = self._set_many_plan(data, timeout, version)
        breaker = self._breaker
        if breaker.opened_at and self._blocked("set_many"):
            self._set_many_blocked(encoded, px)
            return list(data)
        mode = self._amode(client)
        try:
            if px is not None and px <= 0:
                await mode.delete_keys(list(encoded))
                return []
            pipe = mode.pipeline()
            self._queue_set_many(pipe, data, fulls, encoded, px, tag_list)
            await pipe.execute()
        except REDIS_ERRORS as exc:
            self._fail("set_many", exc)
            return list(data)
        finally:
            self._forget_local(fulls)
        if breaker.failures:
            self._recovered()
        self._counters.sets += len(encoded)
        return []

    async def adelete(
        self, key: Any, version: int | None = None, prefix: str | None = None, client: Any = None
    ) -> bool:
        full = self._delete_key(key, version, prefix)
        self._forget_local((full,))
        breaker = self._breaker
        if breaker.opened_at and self._blocked("delete"):
            return False
        try:
            deleted = bool(await (client or self._aredis()).delete(full))
        except REDIS_ERRORS as exc:
            self._fail("delete", exc)
            return False
        finally:
            self._wrote(full)
        if breaker.failures:
            self._recovered()
        self._counters.deletes += 1
        return deleted

    async def adelete_many(
        self, keys: Iterable[Any], version: int | None = None, client: Any = None
    ) -> int:
        fulls = self._make_keys(list(keys), version)
        if not fulls:
            return 0
        self._forget_local(fulls)
        breaker = self._breaker
        if breaker.opened_at and self._blocked("delete_many"):
            return 0
        try:
            deleted = await self._amode(client).delete_keys(fulls)
        except REDIS_ERRORS as exc:
            self._fail("delete_many", exc)
            return 0
        finally:
            self._forget_local(fulls)
        if breaker.failures:
            self._recovered()
        self._counters.deletes += len(fulls)
        return deleted

    @adegrades(False)
    async def ahas_key(self, key: Any, version: int | None = None, client: Any = None) -> bool:
        return bool(await (client or self._aredis()).exists(self.make_key(key, version)))

    @adegrades(False)
    async def atouch(
        self,
        key: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
    ) -> bool:
        full = self.make_key(key, version)
        redis = client or self._aredis()
        px = self._px(timeout)
        try:
            if px is None:
                pipe = redis.pipeline(transaction=False)
                pipe.persist(full)
                pipe.exists(full)
                return bool((await pipe.execute())[1])
            return bool(await redis.pexpire(full, px))
        finally:
            self._wrote(full)

    async def aincr(
        self,
        key: Any,
        delta: int = 1,
        version: int | None = None,
        client: Any = None,
        ignore_key_check: bool = False,
    ) -> int:
        """``incr``: the same Lua script (atomic, keeps the TTL), one round trip."""
        full = self.make_key(key, version)
        breaker = self._breaker
        if breaker.opened_at and self._blocked("incr"):
            raise CacheUnavailable(self.alias, "incr", CircuitOpen("circuit open"))
        redis = client or self._aredis()
        try:
            if ignore_key_check:
                value = await redis.execute_command("INCRBY", full, delta)
            else:
                value = await _script(redis, INCR_SHA, INCR_SCRIPT, [full], [delta])
        except ResponseError as exc:
            failure = self._incr_failure(exc)
            if failure == "outage":
                self._fail("incr", exc)
                raise CacheUnavailable(self.alias, "incr", exc) from exc
            if breaker.failures:
                self._recovered()
            if failure == "wrongtype":
                kind = await redis.type(full)
                raise TypeError(f"value of {full!r} is a Redis {kind!r}, not a counter") from exc
            if failure == "other":
                self._counters.errors += 1
                raise CacheUnavailable(self.alias, "incr", exc) from exc
            value = self._incr_big_value(full, await redis.get(full), delta)
            await redis.set(full, value, keepttl=True)
            return value
        except REDIS_ERRORS as exc:
            self._fail("incr", exc)
            raise CacheUnavailable(self.alias, "incr", exc) from exc
        finally:
            self._wrote(full)
        if breaker.failures:
            self._recovered()
        if value is None:
            raise ValueError(f"Key {key!r} not found")
        return int(value)

    async def adecr(
        self, key: Any, delta: int = 1, version: int | None = None, client: Any = None
    ) -> int:
        return await self.aincr(key, -delta, version=version, client=client)

    async def aincr_version(
        self, key: Any, delta: int = 1, version: int | None = None, client: Any = None
    ) -> int:
        """Move ``key`` to ``version + delta``, keeping its value and TTL."""
        version = self.version if version is None else version
        old = self.make_key(key, version)
        new = self.make_key(key, version + delta)
        if self._breaker.opened_at and self._blocked("incr_version"):
            raise CacheUnavailable(self.alias, "incr_version", CircuitOpen("circuit open"))
        redis = client or self._aredis()
        try:
            pipe = redis.pipeline(transaction=False)
            pipe.get(old)
            pipe.pttl(old)
            raw, pttl = await pipe.execute()
            if raw is None:
                raise ValueError(f"Key {key!r} not found")
            if pttl is not None and pttl > 0:
                await redis.set(new, raw, px=pttl)
            else:
                await redis.set(new, raw)
            await redis.delete(old)
        except REDIS_ERRORS as exc:
            self._fail("incr_version", exc)
            raise CacheUnavailable(self.alias, "incr_version", exc) from exc
        finally:
            self._forget_local((old, new))
        return version + delta

    async def adecr_version(
        self, key: Any, delta: int = 1, version: int | None = None, client: Any = None
    ) -> int:
        return await self.aincr_version(key, -delta, version=version, client=client)

    async def aget_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        **flight: Any,
    ) -> Any:
        """``get_or_set`` natively async: a hit is one GET; a miss is computed once across
        processes, waiters sleep with ``asyncio.sleep``. ``default`` may return an awaitable."""
        from ..cache_aside import single_flight

        cache = cast("RedisCache", self)
        return await single_flight.aget_or_set(cache, key, default, timeout, version, **flight)

    @adegrades(False)
    async def aclear(self) -> bool:
        glob = self._clear_glob()
        mode = self._amode()
        if glob is None:
            await mode.flush()
        else:
            await self._adelete_glob(glob, mode)
        self._forget_all_local()
        return True

    async def aclose(self, **kwargs: Any) -> None:
        """Connections are pooled per event loop and closed with it."""

    # -- invalidation ------------------------------------------------------------------

    async def ainvalidate_prefix(self, prefix: str) -> int:
        """``invalidate_prefix``, natively async."""
        return await self._ainvalidate([self._prefix_index(prefix)])

    async def ainvalidate_tags(self, *tags: str) -> int:
        """``invalidate_tags``, natively async."""
        return await self._ainvalidate(self._tag_indexes(tags))

    @adegrades(0)
    async def _ainvalidate(self, indexes: list[str]) -> int:
        if self._fallback is not None:
            self._fallback.clear()
        redis = self._aredis()
        sep = self.key_separator
        members: list[bytes] = []
        for name in indexes:
            keys = [name, index.persistent_twin(name, sep)]
            members += await _script(redis, _TAKE_SHA, index.TAKE_SCRIPT, keys, [index.now_ms()])
        if not members:
            return 0
        deleted = await self._amode(redis).delete_keys(index.unique(members))
        self._forget_members(members)
        self._counters.deletes += deleted
        return deleted

    # -- Redis extras (django-redis compatible) --------------------------------------------

    @adegrades(0)
    async def attl(self, key: Any, version: int | None = None, client: Any = None) -> int | None:
        """Seconds to live; ``None`` if it never expires, 0 if missing."""
        t = int(await (client or self._aredis()).ttl(self.make_key(key, version)))
        return None if t == -1 else max(t, 0)

    @adegrades(0)
    async def apttl(self, key: Any, version: int | None = None, client: Any = None) -> int | None:
        """Milliseconds to live; ``None`` if it never expires, 0 if missing."""
        t = int(await (client or self._aredis()).pttl(self.make_key(key, version)))
        return None if t == -1 else max(t, 0)

    async def _aexpiry(self, full: str, client: Any, command: str, *args: Any) -> bool:
        """Run one expiry command (``pexpire``, ``persist``, ...) on ``full``; drop
        its local copy whatever happens, since its lifetime changed."""
        try:
            return bool(await getattr(client or self._aredis(), command)(full, *args))
        finally:
            self._wrote(full)

    @adegrades(False)
    async def aexpire(
        self, key: Any, timeout: Any, version: int | None = None, client: Any = None
    ) -> bool:
        px = self._px(timeout)
        full = self.make_key(key, version)
        if px is None:
            return await self._aexpiry(full, client, "persist")
        return await self._aexpiry(full, client, "pexpire", px)

    @adegrades(False)
    async def apexpire(
        self, key: Any, timeout: int, version: int | None = None, client: Any = None
    ) -> bool:
        return await self._aexpiry(self.make_key(key, version), client, "pexpire", timeout)

    @adegrades(False)
    async def aexpire_at(
        self, key: Any, when: Any, version: int | None = None, client: Any = None
    ) -> bool:
        return await self._aexpiry(self.make_key(key, version), client, "expireat", when)

    @adegrades(False)
    async def apexpire_at(
        self, key: Any, when: Any, version: int | None = None, client: Any = None
    ) -> bool:
        return await self._aexpiry(self.make_key(key, version), client, "pexpireat", when)

    @adegrades(False)
    async def apersist(self, key: Any, version: int | None = None, client: Any = None) -> bool:
        return await self._aexpiry(self.make_key(key, version), client, "persist")

    @adegrades(list)
    async def akeys(self, search: str, version: int | None = None, client: Any = None) -> list[str]:
        """User keys matching the glob ``search`` (KEYS on every primary: small databases only)."""
        found = await self._amode(client).keys(self.make_pattern(search, version))
        return [self.reverse_key(_text(k)) for k in found]

    async def aiter_keys(
        self,
        search: str,
        itersize: int | None = None,
        client: Any = None,
        version: int | None = None,
    ) -> AsyncIterator[str]:
        """User keys matching ``search``, via SCAN on every primary."""
        pattern = self.make_pattern(search, version)
        try:
            async for full in self._amode(client).scan(pattern, itersize):
                yield self.reverse_key(_text(full))
        except REDIS_ERRORS as exc:
            self._fail("iter_keys", exc)

    @adegrades(0)
    async def adelete_pattern(
        self,
        pattern: str,
        version: int | None = None,
        prefix: str | None = None,
        client: Any = None,
        itersize: int | None = None,
    ) -> int:
        """Delete every key matching the glob ``pattern`` (SCAN, every primary)."""
        glob = self.make_pattern(pattern, version, prefix)
        return await self._adelete_glob(glob, self._amode(client), itersize)

    async def _adelete_glob(
        self, glob: str, mode: AsyncSingleMode, itersize: int | None = None
    ) -> int:
        deleted = 0
        batch: list[bytes] = []
        async for full in mode.scan(glob, itersize or 1000):
            batch.append(full)
            if len(batch) >= 500:
                deleted += await mode.delete_keys(batch)
                self._forget_local(_text(k) for k in batch)
                batch = []
        if batch:
            deleted += await mode.delete_keys(batch)
            self._forget_local(_text(k) for k in batch)
        self._counters.deletes += deleted
        return deleted

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
        return self._aredis().lock(
            self.make_key(key, version),
            timeout=timeout,
            sleep=sleep,
            blocking=blocking,
            blocking_timeout=blocking_timeout,
            thread_local=thread_local,
        )


def _text(key: bytes | str) -> str:
    return key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else key
