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

The algorithm is written once, as steps (``backend.execution``): ``get_or_set``
runs them on the sync client, ``aget_or_set`` on the native async one
(redis.asyncio, no thread), where waiters ``asyncio.sleep`` between polls and
``default`` may return an awaitable (a coroutine function), which is awaited.

A computation that raises leaves a short *failure mark* (``failure_ttl``
seconds, ``FAILURE_TTL`` = one second by default; 0 turns it off) before its
lock is released. Whoever takes the lock while the mark lives (the waiters,
within milliseconds) raises ``ProducerFailed`` with the original error's class
and message instead of running the failing computation again, so N waiters
cost one failing run, not N in a row. The holder itself gets its own
exception. Once the mark expires the next caller computes again.

With ``CACHE_METRICS`` on, the alias's metrics count the callers that waited and
the computations run (``single_flight_waits``, ``single_flight_computations``).
"""

from __future__ import annotations

import contextlib
import random
import secrets
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from .. import conf
from ..backend.execution import Compute, Pipe, Script, Sleep, Steps, Unavailable
from ..backend.ops import reads, writes
from ..backend.scripts import LuaScript
from ..exceptions import CorruptValue, ProducerFailed
from ..ttl import TTLLike, jittered, parse_ttl

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


def get_or_set(cache: RedisCache, key: Any, default: Any, *args: Any, **options: Any) -> Any:
    """The value of ``key``; on a miss, ``default`` (called if callable) stored and returned.

    ``timeout``, ``version`` as Django's. ``single_flight`` (default
    ``CACHE_SINGLE_FLIGHT``): compute once across processes;
    ``lock_timeout``/``wait_timeout`` override ``CACHE_LOCK_TIMEOUT`` and
    ``CACHE_LOCK_WAIT``. ``early_refresh``: seconds before expiry when one caller
    recomputes. ``jitter``: add up to this fraction of the timeout, at random, so
    keys written together do not expire together. ``tags``: the stored value joins
    them (see ``invalidate_tags``). ``failure_ttl``: how long a failed computation
    keeps the next callers from running it again (they raise ``ProducerFailed``);
    default ``FAILURE_TTL``, 0 = off.
    """
    return cache.run(flight(cache, key, default, *args, **options), "get_or_set")


async def aget_or_set(cache: RedisCache, key: Any, default: Any, *args: Any, **options: Any) -> Any:
    """``get_or_set`` on the native async client; a hit is one GET. ``default`` is called
    in the event loop (as Django's ``aget_or_set`` does); an awaitable it returns is awaited."""
    return await cache.arun(flight(cache, key, default, *args, **options), "get_or_set")


def flight(
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
) -> Steps[Any]:
    """The steps of ``get_or_set``."""
    if early_refresh is None:
        value = yield from reads.get(cache, key, _MISSING, version)
    else:
        value = yield from _early(
            cache, key, default, timeout, version, early_refresh, jitter, lock_timeout, tags
        )
    if value is not _MISSING:
        return value
    if not callable(default):
        # Nothing to compute: Django's behaviour.
        return (yield from _add(cache, key, default, timeout, version, tags))
    ttl = _jittered(cache, timeout, jitter)
    if not (conf.read("CACHE_SINGLE_FLIGHT") if single_flight is None else single_flight):
        _flight(cache, "computation")
        value = yield Compute(default)
        return (yield from _add(cache, key, value, ttl, version, tags))
    lock = ComputeLock(cache, key, version, lock_timeout)
    full = cache.make_key(key, version)
    if (yield from lock.acquire_steps()) is False:
        _flight(cache, "wait")
        value = yield from _wait(cache, full, lock, _seconds(wait_timeout, "CACHE_LOCK_WAIT"))
        if value is not _MISSING:
            return value
    if not lock.held:
        # Redis is unavailable, or we waited long enough: compute without the lock.
        _flight(cache, "computation")
        value = yield Compute(default)
        yield from writes.add(cache, key, value, ttl, version, tags=tags)
        return value
    try:
        value = yield from _fill_locked(cache, key, default, ttl, version, lock, tags, failure_ttl)
    except GeneratorExit:
        raise  # cancelled mid-call: the lock expires on its own
    except BaseException:
        yield from lock.release_steps()
        raise
    yield from lock.release_steps()
    return value


def _fill_locked(
    cache: RedisCache,
    key: Any,
    compute: Callable[[], Any],
    ttl: Any,
    version: int | None,
    lock: ComputeLock,
    tags: Iterable[str] | None,
    failure_ttl: TTLLike,
) -> Steps[Any]:
    """Under the lock: maybe someone stored it (or just failed to) meanwhile; else compute."""
    full = cache.make_key(key, version)
    value, failed = yield from _look(cache, full, lock.mark)
    if value is not _MISSING:
        return value
    if failed is not None:
        raise ProducerFailed(str(key), failed)
    _flight(cache, "computation")
    try:
        value = yield Compute(compute)
    except Exception as exc:
        yield from lock.mark_failed_steps(exc, _failure_seconds(failure_ttl))  # before release
        raise
    yield from writes.set_(cache, key, value, ttl, version, tags=tags)
    return value


def _add(
    cache: RedisCache,
    key: Any,
    value: Any,
    timeout: Any,
    version: int | None,
    tags: Iterable[str] | None,
) -> Steps[Any]:
    yield from writes.add(cache, key, value, timeout, version, tags=tags)
    # Another caller may have added first: return what is stored (Django's contract).
    return (yield from reads.get(cache, key, value, version))


def _wait(cache: RedisCache, full: str, lock: ComputeLock, wait: float) -> Steps[Any]:
    """Poll until the value appears, the lock is ours (its holder died), or ``wait`` runs out."""
    deadline = time.monotonic() + wait
    delay = _FIRST_POLL
    while (left := deadline - time.monotonic()) > 0:
        yield Sleep(min(delay * random.uniform(0.8, 1.2), left))
        delay = min(delay * _BACKOFF, _MAX_POLL)
        value = yield from _peek(cache, full)
        if value is not _MISSING:
            return value
        if (yield from lock.acquire_steps()) is not False:  # taken over, or Redis gone
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
) -> Steps[Any]:
    """A read that also refreshes the value when it expires within ``early_refresh``."""
    full = cache.make_key(key, version)
    try:
        raw, pttl = yield Pipe([("GET", full), ("PTTL", full)])
    except Unavailable:
        return _MISSING
    counters = cache.runtime.counters
    metrics = cache.runtime.metrics
    if raw is None:
        counters.misses += 1
        if metrics is not None:
            metrics.count("get", "miss")
        return _MISSING
    counters.hits += 1
    if metrics is not None:
        metrics.count("get", "hit")
    value = _decoded(cache, full, raw)
    window = parse_ttl(early_refresh)
    due = window is not None and 0 <= int(pttl) < window * 1000
    if value is _MISSING or not callable(default) or not due:
        return value
    lock = ComputeLock(cache, key, version, lock_timeout)
    if (yield from lock.acquire_steps()):
        _flight(cache, "computation")
        try:
            value = yield Compute(default)
            ttl = _jittered(cache, timeout, jitter)
            yield from writes.set_(cache, key, value, ttl, version, tags=tags)
        finally:
            yield from lock.release_steps()
    return value


def _flight(cache: RedisCache, event: str) -> None:
    metrics = cache.runtime.metrics
    if metrics is not None:
        metrics.flight(event)


def _look(cache: RedisCache, full: str, mark: str) -> Steps[tuple[Any, str | None]]:
    """The stored value (or ``_MISSING``) and the failure mark (or None), one round trip
    (on a Cluster the two keys may live on two nodes: one request each, in parallel)."""
    try:
        raw, failed = yield Pipe([("GET", full), ("GET", mark)])
    except Unavailable:
        return _MISSING, None
    value = _MISSING if raw is None else _decoded(cache, full, raw)
    if isinstance(failed, bytes):
        failed = failed.decode("utf-8", "replace")
    return value, failed


def _peek(cache: RedisCache, full: str) -> Steps[Any]:
    """The stored value or ``_MISSING``, without counting a hit or a miss (polls)."""
    try:
        raw = yield ("GET", full)
    except Unavailable:
        return _MISSING
    return _MISSING if raw is None else _decoded(cache, full, raw)


def _decoded(cache: RedisCache, full: str, raw: bytes) -> Any:
    try:
        return cache.decode(raw, full)
    except CorruptValue:
        return _MISSING


class ComputeLock:
    """The lock of one key's computation: ``SET NX PX`` to take, compare-and-delete to release.

    The token makes a holder whose lock already expired unable to release the
    lock of the caller that took over. Each method is steps (``*_steps``) with a
    sync and an async way to run them.
    """

    __slots__ = ("_cache", "_ms", "_token", "held", "key", "mark")

    def __init__(
        self, cache: RedisCache, key: Any, version: int | None, timeout: TTLLike = None
    ) -> None:
        self._cache = cache
        self.key = cache.make_key(cache.internal_name("lock", key), version)
        # Where a failed computation leaves its short mark (see the module docstring).
        self.mark = cache.make_key(cache.internal_name("failed", key), version)
        self._ms = max(int(_seconds(timeout, "CACHE_LOCK_TIMEOUT") * 1000), 1)
        self._token = secrets.token_hex(8)
        self.held = False

    def acquire_steps(self) -> Steps[bool | None]:
        """True if taken, False if someone holds it, None if Redis is unavailable."""
        try:
            self.held = bool((yield ("SET", self.key, self._token, "PX", self._ms, "NX")))
        except Unavailable:
            return None
        return self.held

    def mark_failed_steps(self, exc: BaseException, seconds: float) -> Steps[None]:
        """Leave the failure mark for ``seconds`` (before the release); best effort."""
        if seconds <= 0 or not self.held:
            return
        ms = max(int(seconds * 1000), 1)
        with contextlib.suppress(Unavailable):  # the waiters will then compute
            yield ("SET", self.mark, f"{type(exc).__qualname__}: {exc}"[:_MARK_LENGTH], "PX", ms)

    def release_steps(self) -> Steps[None]:
        if not self.held:
            return
        self.held = False
        with contextlib.suppress(Unavailable):  # else it expires on its own
            yield Script(_RELEASE, [self.key], [self._token])

    def acquire(self) -> bool | None:
        return self._cache.run(self.acquire_steps(), "lock")  # type: ignore[no-any-return]

    async def aacquire(self) -> bool | None:
        return await self._cache.arun(self.acquire_steps(), "lock")  # type: ignore[no-any-return]

    def release(self) -> None:
        self._cache.run(self.release_steps(), "unlock")

    async def arelease(self) -> None:
        await self._cache.arun(self.release_steps(), "unlock")


def _failure_seconds(value: TTLLike) -> float:
    seconds = FAILURE_TTL if value is None else parse_ttl(value)
    return max(seconds or 0.0, 0.0)


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
