"""The ``CACHES`` backend: ``django_creator_cache.backend.RedisCache``."""

from .cache import RedisCache

__all__ = ["RedisCache"]
