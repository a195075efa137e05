"""Names kept for imports: ``track_prefixes`` (deprecated, harmless), ``PREFIX``, ``TAG``."""

from ..backend.indexes import PREFIX, TAG, checked_prefix, track_prefixes

__all__ = ["PREFIX", "TAG", "checked_prefix", "track_prefixes"]
