"""Raw Redis commands for the layers above the backend, under its failure policy.

Single flight and the domain managers need commands the Django cache API does
not have (SET NX PX on a lock, Lua scripts, hashes). ``run`` sends them on the
backend's shared client and turns every failure into one ``CacheUnavailable``
after the backend has counted and logged it, so each caller decides in one
place whether that means "fail open" or "fail closed".
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from redis.exceptions import NoScriptError

from ..backend.policy import REDIS_ERRORS
from ..exceptions import CacheUnavailable, CircuitOpen

if TYPE_CHECKING:
    from ..backend.cache import RedisCache

T = TypeVar("T")


def run(cache: RedisCache, operation: str, action: Callable[[Any], T]) -> T:
    """``action(client)`` on the alias's client; raises ``CacheUnavailable`` on any failure.

    An open circuit fails fast without touching the network; a success after
    failures closes it, as for the backend's own calls.
    """
    breaker = cache._breaker
    if breaker.opened_at and cache._blocked(operation):
        raise CacheUnavailable(cache.alias, operation, CircuitOpen("circuit open"))
    try:
        result = action(cache._redis)
    except REDIS_ERRORS as exc:
        cache._fail(operation, exc)  # raises itself in strict mode
        raise CacheUnavailable(cache.alias, operation, exc) from exc
    if breaker.failures:
        cache._recovered()
    return result


async def arun(cache: RedisCache, operation: str, action: Callable[[Any], Awaitable[T]]) -> T:
    """``run`` for the async side: ``await action(client)`` on the running loop's client."""
    breaker = cache._breaker
    if breaker.opened_at and cache._blocked(operation):
        raise CacheUnavailable(cache.alias, operation, CircuitOpen("circuit open"))
    try:
        result = await action(cache._aredis())
    except REDIS_ERRORS as exc:
        cache._fail(operation, exc)  # raises itself in strict mode
        raise CacheUnavailable(cache.alias, operation, exc) from exc
    if breaker.failures:
        cache._recovered()
    return result


class LuaScript:
    """A Lua script sent as EVALSHA; its source goes once to a server that lacks it.

    Works on every mode: redis-py routes EVALSHA/EVAL by the first key, so on a
    Cluster every key of one script must share a slot (use a hash tag).
    """

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        try:
            return client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:  # first use on this server, or its scripts were flushed
            return client.execute_command("EVAL", self.source, len(keys), *keys, *args)

    async def acall(self, client: Any, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        """The same on a redis.asyncio client."""
        try:
            return await client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.execute_command("EVAL", self.source, len(keys), *keys, *args)
