"""Invalidation by prefix and by tag, without scanning the keyspace."""

from .index import track_prefixes

__all__ = ["track_prefixes"]
