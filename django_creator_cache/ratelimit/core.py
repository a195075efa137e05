"""The rate-limit check: one Lua script, one round trip, no request needed.

``Limiter(group, rate)`` counts hits per identity (an IP block, a user, an API key, or
``f"{platform}:{user_id}"`` for a domain counter). ``hit`` counts and answers atomically, so
limits are exact across processes; ``peek`` answers without counting; ``reset`` forgets.
``ahit``/``apeek``/``areset`` do the same natively on redis.asyncio: only the Redis call
differs, the key, the reply and the failure policy are shared. The cache alias is looked
up on every call (``RATELIMIT_CACHE`` unless given), never kept.

When Redis cannot answer (down, circuit open, error reply) the limiter fails open (the hit
is allowed) or, with ``RATELIMIT_FAIL_OPEN = False``, closed; either way it is counted in
the alias's statistics and the returned ``Usage`` says ``unavailable``. With
``CACHE_METRICS`` on, every counted check is also in the alias's metrics, by group.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass

from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from ..backend.cache import RedisCache
from ..backend.execution import Script, Steps, Unavailable
from ..backend.replies import PARSE_ERRORS
from ..backend.scripts import LuaScript
from ..exceptions import CacheUnavailable
from . import config
from .rates import Rate, as_rate
from .scripts import SCRIPTS

ALGORITHMS = tuple(SCRIPTS)
# Identities kept readable in key names; anything else (braces would break the hash tag)
# is replaced by its hash.
_PLAIN_IDENTITY = re.compile(r"[\w.:/@-]{1,100}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Usage:
    """What one check found: whether the hit is allowed and where the limit stands.

    ``reset_seconds``: until the whole limit is available again; ``retry_after``: until a
    refused hit would pass (0 when allowed). ``unavailable``: Redis could not answer and
    ``allowed`` is the ``RATELIMIT_FAIL_OPEN`` policy, not a count.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float
    retry_after: float
    group: str = ""
    unavailable: bool = False

    @property
    def used(self) -> int:
        return self.limit - self.remaining


class Limiter:
    """One limit (``group`` at ``rate`` with ``algorithm``) over any number of identities.

    ``algorithm``: ``"sliding_window"`` (default; exact, memory grows with the limit),
    ``"fixed_window"`` (one counter; up to twice the limit across a window boundary) or
    ``"token_bucket"`` (bursts up to the limit, then a steady pace).
    """

    __slots__ = ("_script", "_stagger", "algorithm", "cache", "fail_open", "group", "rate")

    def __init__(
        self,
        group: str,
        rate: Rate | str,
        *,
        algorithm: str = "sliding_window",
        cache: str | None = None,
        fail_open: bool | None = None,
    ) -> None:
        if algorithm not in SCRIPTS:
            raise ValueError(f"unknown algorithm {algorithm!r}: use one of {', '.join(SCRIPTS)}")
        self.group = group
        self.rate = as_rate(rate)
        self.algorithm = algorithm
        self.cache = cache
        self.fail_open = fail_open
        self._script: LuaScript = SCRIPTS[algorithm]
        self._stagger = algorithm == "fixed_window"

    def __repr__(self) -> str:
        return f"Limiter({self.group!r}, {str(self.rate)!r}, algorithm={self.algorithm!r})"

    def backend(self) -> RedisCache:
        """The cache this limiter counts in, looked up now."""
        alias = self.cache or config.cache_alias()
        backend = caches[alias]
        if not isinstance(backend, RedisCache):
            raise ImproperlyConfigured(
                f"rate limits need a django_creator_cache RedisCache; CACHES[{alias!r}] is "
                f"{type(backend).__module__}.{type(backend).__qualname__} (see RATELIMIT_CACHE)"
            )
        return backend

    def key(self, identity: str) -> str:
        """The Redis key counting ``identity`` (for inspection and tests)."""
        backend = self.backend()
        return backend.make_key(self._cache_key(identity, backend))

    def _cache_key(self, identity: str, backend: RedisCache) -> str:
        """``rl``, algorithm, group, rate and ``{identity}``, joined by the alias's separator
        (``make_key`` adds the prefix and version). The identity is a hash tag: whatever
        else a limit stores will share its Cluster slot."""
        if not _PLAIN_IDENTITY.fullmatch(identity):
            digest = hashlib.blake2b(identity.encode("utf-8", "surrogatepass"), digest_size=16)
            identity = f"#{digest.hexdigest()}"
        rate = self.rate
        return backend.keys_manager.custom(
            "rl", self.algorithm, self.group, f"{rate.limit}/{rate.period}", f"{{{identity}}}"
        )

    def hit(self, identity: str, cost: int = 1) -> Usage:
        """Count ``cost`` hits for ``identity`` if the limit allows them, and say so.

        A refused hit is not counted. The key's TTL is set atomically with the count.
        """
        backend = self._backend_for(cost)
        try:
            return backend.run(self._check(backend, identity, cost), "ratelimit")  # type: ignore[no-any-return]
        except CacheUnavailable:  # a strict alias: still the fail-open policy's to decide
            return self._unavailable(backend, cost)

    async def ahit(self, identity: str, cost: int = 1) -> Usage:
        """``hit`` on the running event loop's client: no worker thread."""
        backend = self._backend_for(cost)
        try:
            return await backend.arun(self._check(backend, identity, cost), "ratelimit")  # type: ignore[no-any-return]
        except CacheUnavailable:
            return self._unavailable(backend, cost)

    def _check(self, backend: RedisCache, identity: str, cost: int) -> Steps[Usage]:
        """One check: one script, its reply as a ``Usage`` (the fail-open policy if Redis
        cannot answer: a lost reply is never resent, so a hit never counts twice)."""
        key, args = self._request(backend, identity, cost)
        try:
            reply = yield Script(self._script, (key,), args)
        except Unavailable:
            return self._unavailable(backend, cost)
        try:
            return self._usage(backend, reply, cost)
        except PARSE_ERRORS:  # not the script's reply: as if Redis could not answer
            return self._unavailable(backend, cost)

    def peek(self, identity: str) -> Usage:
        """Where ``identity`` stands, without counting: would one more hit be allowed?"""
        return self.hit(identity, cost=0)

    async def apeek(self, identity: str) -> Usage:
        return await self.ahit(identity, cost=0)

    def reset(self, identity: str) -> bool:
        """Forget every hit of ``identity``; True if there was something to forget."""
        backend = self.backend()
        return backend.delete(self._cache_key(identity, backend))

    async def areset(self, identity: str) -> bool:
        backend = self.backend()
        return await backend.adelete(self._cache_key(identity, backend))

    def _backend_for(self, cost: int) -> RedisCache:
        if not 0 <= cost <= self.rate.limit:
            raise ValueError(f"cost must be between 0 and the limit {self.rate.limit}, got {cost}")
        return self.backend()

    def _request(
        self, backend: RedisCache, identity: str, cost: int
    ) -> tuple[str, tuple[int, ...]]:
        """The key and the script's arguments for one check."""
        key = backend.make_key(self._cache_key(identity, backend))
        rate = self.rate
        args: tuple[int, ...] = (rate.limit, rate.period_ms, cost)
        if self._stagger:
            args += (zlib.crc32(key.encode("utf-8", "surrogatepass")) % rate.period_ms,)
        return key, args

    def _usage(self, backend: RedisCache, reply: list[int], cost: int) -> Usage:
        """The script's reply ``[allowed, remaining, reset_ms, retry_ms]`` as a ``Usage``."""
        allowed, remaining, reset_ms, retry_ms = reply
        usage = Usage(
            allowed=bool(allowed),
            limit=self.rate.limit,
            remaining=int(remaining),
            reset_seconds=int(reset_ms) / 1000,
            retry_after=int(retry_ms) / 1000,
            group=self.group,
        )
        if cost:
            _count(backend, "allowed" if usage.allowed else "blocked", self.group)
        return usage

    def _unavailable(self, backend: RedisCache, cost: int) -> Usage:
        fail_open = config.fail_open() if self.fail_open is None else self.fail_open
        if cost:
            _count(backend, "failopen" if fail_open else "failclosed", self.group)
        limit = self.rate.limit
        if fail_open:
            return Usage(True, limit, limit, 0.0, 0.0, self.group, unavailable=True)
        # Try again once the circuit breaker will have probed Redis again.
        retry = backend.options.circuit_cooldown
        return Usage(False, limit, 0, retry, retry, self.group, unavailable=True)


def hit(
    group: str,
    identity: str,
    rate: Rate | str,
    *,
    cost: int = 1,
    algorithm: str = "sliding_window",
    cache: str | None = None,
    fail_open: bool | None = None,
) -> Usage:
    """``Limiter(group, rate, ...).hit(identity, cost)`` in one call."""
    limiter = Limiter(group, rate, algorithm=algorithm, cache=cache, fail_open=fail_open)
    return limiter.hit(identity, cost)


# Counter suffix -> the result label of the ratelimit_checks metric.
_RESULTS = {
    "allowed": "allowed",
    "blocked": "refused",
    "failopen": "fail_open",
    "failclosed": "fail_closed",
}


def _count(backend: RedisCache, outcome: str, group: str) -> None:
    runtime = backend.runtime
    counter = f"ratelimit_{outcome}"
    setattr(runtime.counters, counter, getattr(runtime.counters, counter) + 1)
    if runtime.metrics is not None:
        runtime.metrics.ratelimited(group, _RESULTS[outcome])
