"""The ``@cached`` decorator core: a function's result, cached by its arguments.

Why a class and not a closure: ``func.invalidate(...)`` must build the same key
as the call, including for methods (``obj.method.invalidate(x)``), so the
wrapper is a descriptor that binds the instance like a method does. The
instance (first parameter named ``self`` or ``cls``) is left out of the key
unless ``include_self=True``: methods cache per arguments, not per object.

Keys are ``<prefix><separator><hash of the canonical arguments>``; the prefix
defaults to the function's dotted path, so keys survive restarts and are the
same in every process. Misses go through the single-flight ``get_or_set``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, ParamSpec, TypeVar, cast, overload

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.cache import BaseCache, caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ..backend.indexes import tag_names
from ..ttl import TTLLike, check_policy, parse_ttl
from ..ttl import policy as ttl_policy
from . import single_flight
from .arguments import digest

_MISSING = object()
P = ParamSpec("P")
R = TypeVar("R")

TagsLike = str | Iterable[str] | Callable[..., str | Iterable[str]]


class CachedFunction(Generic[P, R]):
    """A function whose results are cached; see ``cached`` for the options."""

    def __init__(
        self,
        func: Callable[P, R],
        *,
        ttl: Any,
        policy: str | None,
        prefix: str | None,
        key: Callable[..., Any] | None,
        tags: TagsLike,
        alias: str,
        version: int | None,
        include_self: bool,
        flight: dict[str, Any],
    ) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.prefix = prefix or f"{func.__module__}.{func.__qualname__}"
        self.alias = alias
        self.version = version
        self.tags = tags
        self._ttl = ttl
        self._policy = policy
        self._key_func = key
        self._flight = flight
        self._signature = inspect.signature(func)
        params = list(self._signature.parameters)
        self._skip_first = bool(params) and params[0] in ("self", "cls") and not include_self

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        cache = caches[self.alias]
        key = self._key(cache, args, kwargs)
        compute = functools.partial(self.func, *args, **kwargs)
        return cast(R, self._get_or_set(cache, key, compute, self.tags_for(*args, **kwargs)))

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        return self if instance is None else BoundCached(self, instance)

    def key_for(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The cache key (without the backend's prefix and version) of this call."""
        return self._key(caches[self.alias], args, kwargs)

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Delete the cached result of this call; True if there was one."""
        cache = caches[self.alias]
        return bool(cache.delete(self._key(cache, args, kwargs), version=self.version))

    def tags_for(self, *args: P.args, **kwargs: P.kwargs) -> tuple[str, ...]:
        """The tags the cached result of this call joins (``cache.invalidate_tags``)."""
        tags = self.tags(*args, **kwargs) if callable(self.tags) else self.tags
        return tag_names(tags)  # one string is one tag, not its characters

    @property
    def timeout(self) -> Any:
        """Seconds to keep a result: ``ttl``, the ``policy``'s TTL, or the cache's default."""
        return ttl_policy(self._policy) if self._policy else self._ttl

    def _key(self, cache: BaseCache, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if self._key_func is not None:
            made = self._key_func(*args, **kwargs)
            part = made if isinstance(made, str) else digest([("key", made)])
        else:
            bound = self._signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = iter(bound.arguments.items())
            if self._skip_first:
                next(arguments)
            part = digest(arguments)
        return f"{self.prefix}{getattr(cache, 'key_separator', ':')}{part}"

    def _get_or_set(
        self, cache: BaseCache, key: str, compute: Callable[[], Any], tags: tuple[str, ...]
    ) -> Any:
        from ..backend.cache import RedisCache  # the backend imports this package

        if isinstance(cache, RedisCache):
            return single_flight.get_or_set(
                cache, key, compute, self.timeout, self.version, tags=tags, **self._flight
            )
        # Another backend: Django's get_or_set (no single flight there).
        return cache.get_or_set(key, compute, self.timeout, version=self.version)


class AsyncCachedFunction(CachedFunction[P, R]):
    """``@cached`` on a coroutine function; ``R`` is the coroutine it returns.

    Natively async: the backend's ``aget_or_set`` (redis.asyncio, single flight
    with ``asyncio.sleep`` waits) awaits the coroutine on a miss, in the
    caller's event loop; no thread is involved.
    """

    def __init__(self, func: Callable[P, R], **options: Any) -> None:
        super().__init__(func, **options)
        markcoroutinefunction(self)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return cast(R, self._acall(args, kwargs))

    async def ainvalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """``invalidate`` on the native async API."""
        cache = caches[self.alias]
        return bool(await cache.adelete(self._key(cache, args, kwargs), version=self.version))

    async def _acall(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        from ..backend.cache import RedisCache  # the backend imports this package

        cache = caches[self.alias]
        key = self._key(cache, args, kwargs)
        coroutine_function = cast(Callable[..., Awaitable[Any]], self.func)
        compute = functools.partial(coroutine_function, *args, **kwargs)
        tags = self.tags_for(*args, **kwargs)
        if isinstance(cache, RedisCache):
            return await single_flight.aget_or_set(
                cache, key, compute, self.timeout, self.version, tags=tags, **self._flight
            )
        # Another backend: Django's get_or_set semantics, awaiting the computation.
        value = await cache.aget(key, _MISSING, version=self.version)
        if value is _MISSING:
            value = await compute()
            await cache.aadd(key, value, self.timeout, version=self.version)
            value = await cache.aget(key, value, version=self.version)
        return value


class BoundCached:
    """A cached method bound to its instance, so ``obj.method.invalidate(x)`` works."""

    def __init__(self, function: CachedFunction[..., Any], instance: Any) -> None:
        self._function = function
        self._instance = instance
        if iscoroutinefunction(function):
            markcoroutinefunction(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._function(self._instance, *args, **kwargs)

    def key_for(self, *args: Any, **kwargs: Any) -> str:
        return self._function.key_for(self._instance, *args, **kwargs)

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        return self._function.invalidate(self._instance, *args, **kwargs)

    async def ainvalidate(self, *args: Any, **kwargs: Any) -> bool:
        function = self._function
        if not isinstance(function, AsyncCachedFunction):
            raise TypeError("ainvalidate() is for cached coroutine functions")
        return await function.ainvalidate(self._instance, *args, **kwargs)

    def tags_for(self, *args: Any, **kwargs: Any) -> tuple[str, ...]:
        return self._function.tags_for(self._instance, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._function, name)


@overload
def cached(func: Callable[P, R], /) -> CachedFunction[P, R]: ...


@overload
def cached(
    func: None = None,
    /,
    *,
    ttl: TTLLike | object = ...,
    policy: str | None = ...,
    prefix: str | None = ...,
    key: Callable[..., Any] | None = ...,
    tags: TagsLike = ...,
    alias: str = ...,
    version: int | None = ...,
    include_self: bool = ...,
    single_flight: bool | None = ...,
    early_refresh: TTLLike = ...,
    jitter: float | None = ...,
    lock_timeout: TTLLike = ...,
    wait_timeout: TTLLike = ...,
    failure_ttl: TTLLike = ...,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]: ...


def cached(
    func: Callable[P, R] | None = None,
    /,
    *,
    ttl: TTLLike | object = DEFAULT_TIMEOUT,
    policy: str | None = None,
    prefix: str | None = None,
    key: Callable[..., Any] | None = None,
    tags: TagsLike = (),
    alias: str = "default",
    version: int | None = None,
    include_self: bool = False,
    single_flight: bool | None = None,
    early_refresh: TTLLike = None,
    jitter: float | None = None,
    lock_timeout: TTLLike = None,
    wait_timeout: TTLLike = None,
    failure_ttl: TTLLike = None,
) -> CachedFunction[P, R] | Callable[[Callable[P, R]], CachedFunction[P, R]]:
    """Cache a function's (or method's, or coroutine function's) result.

    ``ttl`` (seconds, ``"15m"``, ``timedelta``, ``None`` = never expire) or
    ``policy`` (a TTL policy name such as ``"view_tracking"``); neither: the
    cache's default timeout. ``prefix``: start of every key (default: the
    function's dotted path). ``key``: a function of the call's arguments giving
    the key part (a str is used as is, anything else is hashed). ``tags``:
    strings, or a function of the arguments giving them: the cached result
    joins them, so ``cache.invalidate_tags(tag)`` drops it. Keys live under
    ``prefix``, which is tracked so ``cache.invalidate_prefix(prefix)`` works.
    ``alias``: the ``CACHES`` entry. ``single_flight``, ``early_refresh``,
    ``jitter``, ``lock_timeout``, ``wait_timeout``, ``failure_ttl``: as for
    ``get_or_set`` (a failed computation makes the callers waiting for it raise
    ``ProducerFailed`` at once instead of each running it again).
    The wrapper gains ``invalidate(*args, **kwargs)`` and ``key_for(...)``.
    """
    if policy is not None and ttl is not DEFAULT_TIMEOUT:
        raise TypeError("@cached takes ttl or policy, not both")
    if policy is not None:
        check_policy(policy, "@cached")
    options: dict[str, Any] = {
        "ttl": ttl if ttl is DEFAULT_TIMEOUT else parse_ttl(cast(TTLLike, ttl)),
        "policy": policy,
        "prefix": prefix,
        "key": key,
        "tags": tags,
        "alias": alias,
        "version": version,
        "include_self": include_self,
        "flight": {
            "single_flight": single_flight,
            "early_refresh": early_refresh,
            "jitter": jitter,
            "lock_timeout": lock_timeout,
            "wait_timeout": wait_timeout,
            "failure_ttl": failure_ttl,
        },
    }

    def decorate(function: Callable[P, R]) -> CachedFunction[P, R]:
        if isinstance(function, staticmethod | classmethod):
            raise TypeError(
                "@cached must be applied below @staticmethod/@classmethod, directly on the function"
            )
        if iscoroutinefunction(cast(Any, function)):  # no narrowing: R is the coroutine
            return AsyncCachedFunction(function, **options)
        return CachedFunction(function, **options)

    return decorate if func is None else decorate(func)
