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
"""

from __future__ import annotations

import contextlib
import random
import secrets
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.core.cache.backends.base import DEFAULT_TIMEOUT

from .. import conf
from ..exceptions import CacheUnavailable
from ..ttl import TTLLike, jittered, parse_ttl
from .commands import LuaScript, run

if TYPE_CHECKING:
    from ..backend.cache import RedisCache

_MISSING = object()
# Waiters poll after 5 ms, then 1.5 times longer each time, at most every 50 ms.
_FIRST_POLL = 0.005
_MAX_POLL = 0.05
_BACKOFF = 1.5
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
) -> Any:
    """The value of ``key``; on a miss, ``default`` (called if callable) stored and returned.

    ``single_flight`` (default ``CACHE_SINGLE_FLIGHT``): compute once across
    processes; ``lock_timeout``/``wait_timeout`` override ``CACHE_LOCK_TIMEOUT``
    and ``CACHE_LOCK_WAIT``. ``early_refresh``: seconds before expiry when one
    caller recomputes. ``jitter``: add up to this fraction of the timeout, at
    random, so keys written together do not expire together. ``tags``: the
    stored value joins them (see ``invalidate_tags``).
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
    return _fill(cache, key, default, ttl, version, lock_timeout, wait_timeout, tags)


async def aget_or_set(
    cache: RedisCache,
    key: Any,
    default: Any,
    timeout: Any = DEFAULT_TIMEOUT,
    version: int | None = None,
    **options: Any,
) -> Any:
    """``get_or_set`` in a worker thread; ``default`` is called there too.

    Not thread-sensitive: waiters sleep, and must not hold up each other.
    """
    call = sync_to_async(get_or_set, thread_sensitive=False)
    return await call(cache, key, default, timeout, version, **options)


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
        # Someone may have stored it between our miss and our lock.
        value = _peek(cache, full)
        if value is _MISSING:
            value = compute()
            cache.set(key, value, ttl, version, tags=tags)
        return value
    finally:
        lock.release()


def _wait(cache: RedisCache, full: str, lock: ComputeLock, wait: float) -> Any:
    """Poll until the value appears, the lock is ours (its holder died), or ``wait`` runs out."""
    deadline = time.monotonic() + wait
    delay = _FIRST_POLL
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(delay * random.uniform(0.8, 1.2), left))
        delay = min(delay * _BACKOFF, _MAX_POLL)
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
    counters: Any = cache._counters  # its counters are slots set at run time
    if raw is None:
        counters.misses += 1
        return _MISSING
    counters.hits += 1
    value = cache._decode(full, raw, _MISSING)
    window = parse_ttl(early_refresh)
    due = window is not None and 0 <= pttl < window * 1000  # -1: no expiry
    if value is _MISSING or not callable(default) or not due:
        return value
    lock = ComputeLock(cache, key, version, lock_timeout)
    if lock.acquire():
        try:
            value = default()
            cache.set(key, value, _jittered(cache, timeout, jitter), version, tags=tags)
        finally:
            lock.release()
    return value


def _get_with_pttl(cache: RedisCache, full: str) -> tuple[bytes | None, int]:
    pipe = cache._mode.pipeline()
    pipe.execute_command("GET", full)
    pipe.execute_command("PTTL", full)
    raw, pttl = pipe.execute()
    return raw, int(pttl)


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

    __slots__ = ("_cache", "_ms", "_token", "held", "key")

    def __init__(
        self, cache: RedisCache, key: Any, version: int | None, timeout: TTLLike = None
    ) -> None:
        sep = cache.key_separator
        self._cache = cache
        self.key = cache.make_key(f"dcc{sep}lock{sep}{key}", version)
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

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        with contextlib.suppress(CacheUnavailable):  # else it expires on its own
            run(self._cache, "unlock", lambda c: _RELEASE(c, [self.key], [self._token]))


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
