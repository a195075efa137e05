"""Redis hash, set and sorted-set helpers (django-redis compatible)."""

from __future__ import annotations


class StructuresMixin:
    """Placeholder until the helpers land."""
