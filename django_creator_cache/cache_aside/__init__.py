"""Cache-aside helpers: single-flight ``get_or_set``, early refresh, TTL jitter, ``@cached``.

``RedisCache.get_or_set``/``aget_or_set`` delegate to ``single_flight``;
``django_creator_cache.decorators.cached`` is ``cached`` from here.
"""

from .cached import AsyncCachedFunction, CachedFunction, cached
from .single_flight import ComputeLock, aget_or_set, get_or_set

__all__ = [
    "AsyncCachedFunction",
    "CachedFunction",
    "ComputeLock",
    "aget_or_set",
    "cached",
    "get_or_set",
]
