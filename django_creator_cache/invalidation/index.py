"""Where code declares what it invalidates: ``track_prefixes`` (kept by the backend)."""

from ..backend.indexes import PREFIX, TAG, declared_roots, track_prefixes

__all__ = ["PREFIX", "TAG", "declared_roots", "track_prefixes"]
