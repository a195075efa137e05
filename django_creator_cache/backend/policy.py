"""The one layer that turns Redis failures into cache behaviour.

Redis down, slow past the command timeout, or answering with an error is
normal life: a read becomes a miss, a write reports False, and the caller goes
on. Only strict mode (``OPTIONS["STRICT"] = True``) raises ``CacheUnavailable``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

# OSError covers socket errors raised before redis-py wraps them;
# RedisClusterException is not a RedisError ("cannot be connected", no targets).
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError)

from .resend import ReplyLost

# Failures that mean "Redis is not reachable right now" (they trip the circuit);
# any other error reply means Redis answered, just not with what we wanted.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ClusterDownError,
    TryAgainError,
    MasterDownError,
    ReadOnlyError,
    RedisClusterException,
    ReplyLost,
    OSError,
)

# On a Cluster these concern one node, whose slots redis-py re-routed (see ``RedisCache._fail``).
CLUSTER_NODE_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError)

F = TypeVar("F", bound=Callable[..., Any])
AF = TypeVar("AF", bound=Callable[..., Awaitable[Any]])


def degrades(default: Any = None) -> Callable[[F], F]:
    """Make a backend method return ``default`` (or ``default()`` if callable)
    when Redis fails or the circuit is open, after the backend has logged and
    counted it; a success closes the circuit."""

    def decorate(method: F) -> F:
        name = method.__name__

        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            breaker = self._breaker
            if breaker.opened_at and self._blocked(name):
                return default() if callable(default) else default
            try:
                result = method(self, *args, **kwargs)
            except REDIS_ERRORS as exc:
                self._fail(name, exc)
                return default() if callable(default) else default
            if breaker.failures:
                self._recovered()
            return result

        return cast(F, wrapper)

    return decorate


def adegrades(default: Any = None) -> Callable[[AF], AF]:
    """``degrades`` for the async methods: the same policy (``_blocked``, ``_fail``,
    ``_recovered`` of the backend), around an awaited call. ``aget_x`` is
    reported as operation ``get_x``."""

    def decorate(method: AF) -> AF:
        name = method.__name__.removeprefix("a")

        @functools.wraps(method)
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            breaker = self._breaker
            if breaker.opened_at and self._blocked(name):
                return default() if callable(default) else default
            try:
                result = await method(self, *args, **kwargs)
            except REDIS_ERRORS as exc:
                self._fail(name, exc)
                return default() if callable(default) else default
            if breaker.failures:
                self._recovered()
            return result

        return cast(AF, wrapper)

    return decorate
