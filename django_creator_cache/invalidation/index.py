"""Where code declares what it invalidates: ``track_prefixes`` (kept by the backend)."""

from ..backend.indexes import declared_roots, track_prefixes

__all__ = ["declared_roots", "track_prefixes"]
