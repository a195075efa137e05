"""Invalidation by prefix and by tag, without scanning the keyspace.

Every write under a prefix is indexed (``backend.indexes``), so nothing needs declaring;
``track_prefixes`` is kept, deprecated and harmless. ``invalidation.models`` has the
model rules (``invalidate_on`` and friends).
"""

from .index import track_prefixes

__all__ = ["track_prefixes"]
