"""The raw redis-py client of a cache alias, to share with Celery, RQ or custom code.

Like django-redis's ``get_redis_connection``: the same connection pool (or
``RedisCluster`` / Sentinel-managed pool) the cache uses, so a process opens no
second set of connections.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import caches


def get_redis_connection(alias: str = "default", write: bool = True) -> Any:
    """The redis-py client (``Redis`` or ``RedisCluster``) behind cache ``alias``.

    ``write`` is accepted for django-redis compatibility; every mode here
    talks to the primary. Raises ``TypeError`` for an alias on another backend.
    """
    from .backend.cache import RedisCache

    cache = caches[alias]
    if not isinstance(cache, RedisCache):
        raise TypeError(
            f"cache {alias!r} uses {type(cache).__module__}.{type(cache).__name__}, "
            "not django_creator_cache.backend.RedisCache"
        )
    return cache.get_client(write=write)
