"""Raw Redis commands for the layers above the backend, under its failure policy.

Single flight and the domain managers need commands the Django cache API does
not have (SET NX PX on a lock, Lua scripts, hashes). ``run`` sends them through
the backend's execution layer (``RedisCache.run``), which counts, logs and
trips the breaker; any failure reaches the caller as ``CacheUnavailable``, so
each caller decides in one place whether that means "fail open" or "fail closed".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..backend.execution import Do, Steps
from ..backend.scripts import LuaScript

if TYPE_CHECKING:
    from ..backend.cache import RedisCache

T = TypeVar("T")

__all__ = ["LuaScript", "arun", "run"]


def _once(action: Callable[[Any], Any]) -> Steps[Any]:
    return (yield Do(action))


def run(cache: RedisCache, operation: str, action: Callable[[Any], T]) -> T:
    """``action(client)`` on the alias's client; raises ``CacheUnavailable`` on any failure."""
    result: T = cache.run(_once(action), operation)
    return result


async def arun(cache: RedisCache, operation: str, action: Callable[[Any], Awaitable[T]]) -> T:
    """``run`` for the async side: ``await action(client)`` on the running loop's client."""
    result: T = await cache.arun(_once(action), operation)
    return result
