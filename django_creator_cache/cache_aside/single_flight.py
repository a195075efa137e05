"""``get_or_set`` that computes a missing value once, even across processes.

Why: when a popular key expires, every process that misses it at that moment
would run the same expensive computation (a stampede). Here the first caller
takes a short lock (``SET NX PX``) and computes; the others poll for the value
with a growing delay and read it. The lock expires on its own
(``CACHE_LOCK_TIMEOUT``), so if its holder dies another caller takes over; a
waiter that has waited ``CACHE_LOCK_WAIT`` computes itself rather than fail.

A hit costs exactly what ``get`` costs: one GET, no lock command. With
``early_refresh`` a hit also reads the remaining TTL in the same round trip
(GET + PTTL, pipelined), and one caller recomputes the value shortly before it
expires while the others keep reading the current one.

``aget_or_set`` is the same algorithm on the backend's native async methods
(redis.asyncio, no thread): waiters ``asyncio.sleep`` between polls, and
``default`` may return an awaitable (a coroutine function), which is awaited.
The decisions (when to compute, how long to wait, the lock's key and token)
are the same functions for both.

A computation that raises leaves a short *failure mark* (``failure_ttl``
seconds, ``FAILURE_TTL`` = one second by default; 0 turns it off) before its
lock is released. Whoever takes the lock while the mark lives (the waiters,
within milliseconds) raises ``ProducerFailed`` with the original error's class
and message instead of running the failing computation again, so N waiters
cost one failing run, not N in a row. The holder itself gets its own
exception. Once the mark expires the next caller computes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import secrets
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from .. import conf
from ..exceptions import CacheUnavailable, ProducerFailed
from ..ttl import TTLLike, jittered, parse_ttl
from .commands import LuaScript, arun, run

if TYPE_CHECKING:
    from ..backend.cache import RedisCache

_MISSING = object()
# Waiters poll after 5 ms, then 1.5 times longer each time, at most every 50 ms.
_FIRST_POLL = 0.005
_MAX_POLL = 0.05
_BACKOFF = 1.5
# Seconds a failed computation's mark lives (the waiters see it within a poll or two).
FAILURE_TTL = 1.0
# Longest description of the failure kept in the mark.
_MARK_LENGTH = 300
_RELEASE = LuaScript(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)


def get_or_set(
    cache: RedisCache,
    key: Any,
    default: Any,
    timeout: Any = DEFAULT_TIMEOUT,
    version: int | None = None,
    *,
    single_flight: bool | None = None,
    lock_timeout: TTLLike = None,
    wait_timeout: TTLLike = None,
    early_refresh: TTLLike = None,
    jitter: float | None = None,
    tags: Iterable[str] | None = None,
    failure_ttl: TTLLike = None,
) -> Any:
    """The value of ``key``; on a miss, ``default`` (called if callable) stored and returned.

    ``single_flight`` (default ``CACHE_SINGLE_FLIGHT``): compute once across
    processes; ``lock_timeout``/``wait_timeout`` override ``CACHE_LOCK_TIMEOUT``
    and ``CACHE_LOCK_WAIT``. ``early_refresh``: seconds before expiry when one
    caller recomputes. ``jitter``: add up to this fraction of the timeout, at
    random, so keys written together do not expire together. ``tags``: the
    stored value joins them (see ``invalidate_tags``). ``failure_ttl``: how
    long a failed computation keeps the next callers from running it again
    (they raise ``ProducerFailed``); default ``FAILURE_TTL``, 0 = off.
    """
    if early_refresh is None:
        value = cache.get(key, _MISSING, version=version)
    else:
        value = _early(
            cache, key, default, timeout, version, early_refresh, jitter, lock_timeout, tags
        )
    if value is not _MISSING:
        return value
    if not callable(default):
        # Nothing to compute: Django's behaviour.
        return _add(cache, key, default, timeout, version, tags)
    ttl = _jittered(cache, timeout, jitter)
    if not (conf.read("CACHE_SINGLE_FLIGHT") if single_flight is None else single_flight):
        return _add(cache, key, default(), ttl, version, tags)
    return _fill(cache, key, default, ttl, version, lock_timeout, wait_timeout, tags, failure_ttl)


async def aget_or_set(
    cache: RedisCache,
    key: Any,
    default: Any,
    timeout: Any = DEFAULT_TIMEOUT,
    version: int | None = None,
    *,
    single_flight: bool | None = None,
    lock_timeout: TTLLike = None,
    wait_timeout: TTLLike = None,
    early_refresh: TTLLike = None,
    jitter: float | None = None,
    tags: Iterable[str] | None = None,
    failure_ttl: TTLLike = None,
) -> Any:
    """``get_or_set`` on the native async API; a hit is one GET.

    ``default`` is called in the event loop (as Django's ``aget_or_set`` does);
    if it returns an awaitable, that is awaited.
    """
    if early_refresh is None:
        value = await cache.aget(key, _MISSING, version=version)
    else:
        value = await _aearly(
            cache, key, default, timeout, version, early_refresh, jitter, lock_timeout, tags
        )
    if value is not _MISSING:
        return value
    if not callable(default):
        return await _aadd(cache, key, default, timeout, version, tags)
    ttl = _jittered(cache, timeout, jitter)
    if not (conf.read("CACHE_SINGLE_FLIGHT") if single_flight is None else single_flight):
        return await _aadd(cache, key, await _computed(default), ttl, version, tags)
    return await _afill(
        cache, key, default, ttl, version, lock_timeout, wait_timeout, tags, failure_ttl
    )


async def _computed(compute: Callable[[], Any]) -> Any:
    """``compute()``, awaited if it returns an awaitable (a coroutine function)."""
    value = compute()
    if inspect.isawaitable(value):
        value = await value
    return value


async def _aadd(
    cache: RedisCache,
    key: Any,
    value: Any,
    timeout: Any,
    version: int | None,
    tags: Iterable[str] | None,
) -> Any:
    await cache.aadd(key, value, timeout, version, tags=tags)
    return await cache.aget(key, value, version=version)


async def _afill(
    cache: RedisCache,
    key: Any,
    compute: Callable[[], Any],
    ttl: Any,
    version: int | None,
    lock_timeout: TTLLike,
    wait_timeout: TTLLike,
    tags: Iterable[str] | None,
    failure_ttl: TTLLike = None,
) -> Any:
    """``_fill``, natively async."""
    full = cache.make_key(key, version)
    lock = ComputeLock(cache, key, version, lock_timeout)
    if await lock.aacquire() is False:
        value = await _await(cache, full, lock, _seconds(wait_timeout, "CACHE_LOCK_WAIT"))
        if value is not _MISSING:
            return value
    if not lock.held:
        value = await _computed(compute)
        await cache.aadd(key, value, ttl, version, tags=tags)
        return value
    try:
        value, failed = await _alook(cache, full, lock.mark)
        if value is not _MISSING:
            return value
        if failed is not None:
            raise ProducerFailed(str(key), failed)
        try:
            value = await _computed(compute)
        except Exception as exc:
            await lock.amark_failed(exc, _failure_seconds(failure_ttl))
            raise
        await cache.aset(key, value, ttl, version, tags=tags)
        return value
    finally:
        await lock.arelease()


async def _await(cache: RedisCache, full: str, lock: ComputeLock, wait: float) -> Any:
    """``_wait``, sleeping with ``asyncio.sleep``."""
    deadline = time.monotonic() + wait
    delay = _FIRST_POLL
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(_pause(delay, left))
        delay = _next_delay(delay)
        value = await _apeek(cache, full)
        if value is not _MISSING:
            return value
        if await lock.aacquire() is not False:
            return _MISSING
    return _MISSING


async def _aearly(
    cache: RedisCache,
    key: Any,
    default: Any,
    timeout: Any,
    version: int | None,
    early_refresh: TTLLike,
    jitter: float | None,
    lock_timeout: TTLLike,
    tags: Iterable[str] | None,
) -> Any:
    """``_early``, natively async."""
    full = cache.make_key(key, version)
    try:
        raw, pttl = await arun(cache, "get", lambda client: _aget_with_pttl(cache, client, full))
    except CacheUnavailable as exc:
        _raise_if_strict(cache, exc)
        return _MISSING
    value = _early_read(cache, full, raw)
    if value is _MISSING or not callable(default) or not _due(pttl, early_refresh):
        return value
    lock = ComputeLock(cache, key, version, lock_timeout)
    if await lock.aacquire():
        try:
            value = await _computed(default)
            await cache.aset(key, value, _jittered(cache, timeout, jitter), version, tags=tags)
        finally:
            await lock.arelease()
    return value


async def _aget_with_pttl(cache: RedisCache, client: Any, full: str) -> tuple[bytes | None, int]:
    pipe = cache._amode(client).pipeline()
    pipe.execute_command("GET", full)
    pipe.execute_command("PTTL", full)
    raw, pttl = await pipe.execute()
    return raw, int(pttl)


async def _alook(cache: RedisCache, full: str, mark: str) -> tuple[Any, str | None]:
    """``_look``, natively async."""

    async def both(client: Any) -> list[Any]:
        pipe = cache._amode(client).pipeline()
        pipe.execute_command("GET", full)
        pipe.execute_command("GET", mark)
        return list(await pipe.execute())

    try:
        raw, failed = await arun(cache, "get", both)
    except CacheUnavailable as exc:
        _raise_if_strict(cache, exc)
        return _MISSING, None
    return _looked(cache, full, raw, failed)


async def _apeek(cache: RedisCache, full: str) -> Any:
    try:
        raw = await arun(cache, "get", lambda client: client.execute_command("GET", full))
    except CacheUnavailable as exc:
        _raise_if_strict(cache, exc)
        return _MISSING
    return _MISSING if raw is None else cache._decode(full, raw, _MISSING)


def _add(
    cache: RedisCache,
    key: Any,
    value: Any,
    timeout: Any,
    version: int | None,
    tags: Iterable[str] | None,
) -> Any:
    cache.add(key, value, timeout, version, tags=tags)
    # Another caller may have added first: return what is stored (Django's contract).
    return cache.get(key, value, version=version)


def _fill(
    cache: RedisCache,
    key: Any,
    compute: Callable[[], Any],
    ttl: Any,
    version: int | None,
    lock_timeout: TTLLike,
    wait_timeout: TTLLike,
    tags: Iterable[str] | None,
    failure_ttl: TTLLike = None,
) -> Any:
    """The miss path: compute under the lock, or wait for whoever holds it."""
    full = cache.make_key(key, version)
    lock = ComputeLock(cache, key, version, lock_timeout)
    if lock.acquire() is False:
        value = _wait(cache, full, lock, _seconds(wait_timeout, "CACHE_LOCK_WAIT"))
        if value is not _MISSING:
            return value
    if not lock.held:
        # Redis is unavailable, or we waited long enough: compute without the lock.
        value = compute()
        cache.add(key, value, ttl, version, tags=tags)
        return value
    try:
        # Someone may have stored it between our miss and our lock, or just failed to.
        value, failed = _look(cache, full, lock.mark)
        if value is not _MISSING:
            return value
        if failed is not None:
            raise ProducerFailed(str(key), failed)
        try:
            value = compute()
        except Exception as exc:
            lock.mark_failed(exc, _failure_seconds(failure_ttl))  # before the release
            raise
        cache.set(key, value, ttl, version, tags=tags)
        return value
    finally:
        lock.release()


def _wait(cache: RedisCache, full: str, lock: ComputeLock, wait: float) -> Any:
    """Poll until the value appears, the lock is ours (its holder died), or ``wait`` runs out."""
    deadline = time.monotonic() + wait
    delay = _FIRST_POLL
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(_pause(delay, left))
        delay = _next_delay(delay)
        value = _peek(cache, full)
        if value is not _MISSING:
            return value
        if lock.acquire() is not False:  # taken over, or Redis gone: stop waiting
            return _MISSING
    return _MISSING


def _early(
    cache: RedisCache,
    key: Any,
    default: Any,
    timeout: Any,
    version: int | None,
    early_refresh: TTLLike,
    jitter: float | None,
    lock_timeout: TTLLike,
    tags: Iterable[str] | None,
) -> Any:
    """A read that also refreshes the value when it expires within ``early_refresh``."""
    full = cache.make_key(key, version)
    try:
        raw, pttl = run(cache, "get", lambda _: _get_with_pttl(cache, full))
    except CacheUnavailable as exc:
        _raise_if_strict(cache, exc)
        return _MISSING
    value = _early_read(cache, full, raw)
    if value is _MISSING or not callable(default) or not _due(pttl, early_refresh):
        return value
    lock = ComputeLock(cache, key, version, lock_timeout)
    if lock.acquire():
        try:
            value = default()
            cache.set(key, value, _jittered(cache, timeout, jitter), version, tags=tags)
        finally:
            lock.release()
    return value


def _pause(delay: float, left: float) -> float:
    """How long a waiter sleeps before its next poll (jittered, never past the deadline)."""
    return min(delay * random.uniform(0.8, 1.2), left)


def _next_delay(delay: float) -> float:
    return min(delay * _BACKOFF, _MAX_POLL)


def _early_read(cache: RedisCache, full: str, raw: bytes | None) -> Any:
    """Count and decode the GET of an early-refresh read (``_MISSING`` on a miss)."""
    counters: Any = cache._counters  # its counters are slots set at run time
    if raw is None:
        counters.misses += 1
        return _MISSING
    counters.hits += 1
    return cache._decode(full, raw, _MISSING)


def _due(pttl: int, early_refresh: TTLLike) -> bool:
    """Whether a value with ``pttl`` ms left is due for its early refresh (-1: no expiry)."""
    window = parse_ttl(early_refresh)
    return window is not None and 0 <= pttl < window * 1000


def _get_with_pttl(cache: RedisCache, full: str) -> tuple[bytes | None, int]:
    pipe = cache._mode.pipeline()
    pipe.execute_command("GET", full)
    pipe.execute_command("PTTL", full)
    raw, pttl = pipe.execute()
    return raw, int(pttl)


def _look(cache: RedisCache, full: str, mark: str) -> tuple[Any, str | None]:
    """The stored value (or ``_MISSING``) and the failure mark (or None), one round trip."""

    def both(_: Any) -> list[Any]:
        pipe = cache._mode.pipeline()  # on a Cluster the two keys may live on two nodes
        pipe.execute_command("GET", full)
        pipe.execute_command("GET", mark)
        return list(pipe.execute())

    try:
        raw, failed = run(cache, "get", both)
    except CacheUnavailable as exc:
        _raise_if_strict(cache, exc)
        return _MISSING, None
    return _looked(cache, full, raw, failed)


def _looked(cache: RedisCache, full: str, raw: Any, failed: Any) -> tuple[Any, str | None]:
    value = _MISSING if raw is None else cache._decode(full, raw, _MISSING)
    if isinstance(failed, bytes):
        failed = failed.decode("utf-8", "replace")
    return value, failed


def _describe(exc: BaseException) -> str:
    """What a failure mark says: the exception's class and message, shortened."""
    return f"{type(exc).__qualname__}: {exc}"[:_MARK_LENGTH]


def _failure_seconds(value: TTLLike) -> float:
    seconds = FAILURE_TTL if value is None else parse_ttl(value)
    return max(seconds or 0.0, 0.0)


def _peek(cache: RedisCache, full: str) -> Any:
    """The stored value or ``_MISSING``, without counting a hit or a miss (polls)."""
    try:
        raw = run(cache, "get", lambda client: client.execute_command("GET", full))
    except CacheUnavailable as exc:
        _raise_if_strict(cache, exc)
        return _MISSING
    return _MISSING if raw is None else cache._decode(full, raw, _MISSING)


class ComputeLock:
    """The lock of one key's computation: ``SET NX PX`` to take, compare-and-delete to release.

    The token makes a holder whose lock already expired unable to release the
    lock of the caller that took over.
    """

    __slots__ = ("_cache", "_ms", "_token", "held", "key", "mark")

    def __init__(
        self, cache: RedisCache, key: Any, version: int | None, timeout: TTLLike = None
    ) -> None:
        sep = cache.key_separator
        self._cache = cache
        self.key = cache.make_key(f"dcc{sep}lock{sep}{key}", version)
        # Where a failed computation leaves its short mark (see the module docstring).
        self.mark = cache.make_key(f"dcc{sep}failed{sep}{key}", version)
        self._ms = max(int(_seconds(timeout, "CACHE_LOCK_TIMEOUT") * 1000), 1)
        self._token = secrets.token_hex(8)
        self.held = False

    def acquire(self) -> bool | None:
        """True if taken, False if someone holds it, None if Redis is unavailable."""
        args = ("SET", self.key, self._token, "PX", self._ms, "NX")
        try:
            self.held = bool(run(self._cache, "lock", lambda c: c.execute_command(*args)))
        except CacheUnavailable as exc:
            _raise_if_strict(self._cache, exc)
            return None
        return self.held

    def mark_failed(self, exc: BaseException, seconds: float) -> None:
        """Leave the failure mark for ``seconds`` (call before ``release``); best effort."""
        if seconds <= 0 or not self.held:
            return
        args = ("SET", self.mark, _describe(exc), "PX", max(int(seconds * 1000), 1))
        with contextlib.suppress(CacheUnavailable):  # the waiters will then compute
            run(self._cache, "failed", lambda c: c.execute_command(*args))

    async def amark_failed(self, exc: BaseException, seconds: float) -> None:
        """``mark_failed`` on the native async client."""
        if seconds <= 0 or not self.held:
            return
        args = ("SET", self.mark, _describe(exc), "PX", max(int(seconds * 1000), 1))
        with contextlib.suppress(CacheUnavailable):
            await arun(self._cache, "failed", lambda c: c.execute_command(*args))

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        with contextlib.suppress(CacheUnavailable):  # else it expires on its own
            run(self._cache, "unlock", lambda c: _RELEASE(c, [self.key], [self._token]))

    async def aacquire(self) -> bool | None:
        """``acquire`` on the native async client."""
        args = ("SET", self.key, self._token, "PX", self._ms, "NX")
        try:
            taken = await arun(self._cache, "lock", lambda c: c.execute_command(*args))
        except CacheUnavailable as exc:
            _raise_if_strict(self._cache, exc)
            return None
        self.held = bool(taken)
        return self.held

    async def arelease(self) -> None:
        """``release`` on the native async client."""
        if not self.held:
            return
        self.held = False
        with contextlib.suppress(CacheUnavailable):
            await arun(
                self._cache, "unlock", lambda c: _RELEASE.acall(c, [self.key], [self._token])
            )


def _seconds(value: TTLLike, setting: str) -> float:
    seconds = parse_ttl(conf.read(setting) if value is None else value)
    if seconds is None or seconds <= 0:
        raise ValueError(f"{setting} (or its argument) must be a positive duration, got {value!r}")
    return seconds


def _jittered(cache: RedisCache, timeout: Any, jitter: float | None) -> Any:
    if not jitter:
        return timeout
    seconds = parse_ttl(cache.default_timeout if timeout is DEFAULT_TIMEOUT else timeout)
    return jittered(seconds, jitter)


def _raise_if_strict(cache: RedisCache, exc: CacheUnavailable) -> None:
    """In strict mode a Redis failure is the caller's to handle, as for every call."""
    if cache.options.strict:
        raise exc
