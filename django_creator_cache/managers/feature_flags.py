"""Feature flags: set, get with a default, list.

Flags live under one hash tag (``{flags}``) with an index, so ``all`` is one
Lua call on one node, on Redis Cluster too. Values go through the alias's
serializer (booleans, numbers, strings, small dicts).

Failure choice: reads fail open (the caller's default: code paths behind a flag
fall back to their default state); writes fail closed (``CacheUnavailable``):
an operator flipping a flag must know it did not flip.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ..ttl import TTLLike
from .base import DomainManager
from .storage import SlotGroup


class FeatureFlagManager(DomainManager):
    """Flags as ``{flags}:<name>``, TTL policy ``default`` (``ttl=None``: never expire)."""

    policy = "default"
    reads_fail_open = True
    writes_fail_open = False

    @property
    def _group(self) -> SlotGroup:
        return SlotGroup(self, self.cache.keys_manager.tag("flags"))

    def set(self, name: str, value: Any = True, *, ttl: TTLLike | object = DEFAULT_TIMEOUT) -> bool:
        group, ttl_ms = self._group, self.ttl_ms(ttl)
        return self._write("set", lambda c: group.set(c, name, value, ttl_ms), False)

    def get(self, name: str, default: Any = False) -> Any:
        group = self._group
        return self._read("get", lambda c: group.get(c, name, default), default)

    def is_enabled(self, name: str, default: bool = False) -> bool:
        return bool(self.get(name, default))

    def delete(self, name: str) -> bool:
        group = self._group
        return self._write("delete", lambda c: group.delete(c, name), False)

    def all(self) -> dict[str, Any]:
        """Every flag that is set, by name."""
        group = self._group
        return self._read("all", group.items, {})
