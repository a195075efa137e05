"""Invalidation by prefix and by tag, without scanning the keyspace.

``track_prefixes`` declares the top-level prefixes whose writes are indexed;
``invalidation.models`` has the model rules (``invalidate_on`` and friends).
"""

from .index import track_prefixes

__all__ = ["track_prefixes"]
