"""A per-user cache: values by (user, name), and "delete everything of this user".

A user's entries share the hash tag ``{user:<id>}`` with an index of them, so
deleting them all is one Lua call on one slot: no keyspace scan, on Redis
Cluster too.

Failure choice: fail open (reads miss, writes return False), except
``delete_all``, which fails closed: "forget this user" must not silently fail.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ..ttl import TTLLike
from .base import DomainManager
from .storage import SlotGroup


class UserCacheManager(DomainManager):
    """Entries ``{user:<id>}:cache:<name>``, TTL policy ``default``."""

    policy = "default"
    reads_fail_open = True
    writes_fail_open = True

    def _group(self, user_id: Any) -> SlotGroup:
        return SlotGroup(self, self.cache.keys_manager.user(user_id, "cache"))

    def set(
        self, user_id: Any, name: str, value: Any, *, ttl: TTLLike | object = DEFAULT_TIMEOUT
    ) -> bool:
        group, ttl_ms = self._group(user_id), self.ttl_ms(ttl)
        return self._write("set", lambda c: group.set(c, name, value, ttl_ms), False)

    def get(self, user_id: Any, name: str, default: Any = None) -> Any:
        group = self._group(user_id)
        return self._read("get", lambda c: group.get(c, name, default), default)

    def delete(self, user_id: Any, name: str) -> bool:
        group = self._group(user_id)
        return self._write("delete", lambda c: group.delete(c, name), False)

    def all(self, user_id: Any) -> dict[str, Any]:
        """Every live entry of the user, by name."""
        group = self._group(user_id)
        return self._read("all", group.items, {})

    def delete_all(self, user_id: Any) -> int:
        """Delete every entry of the user; returns how many there were."""
        group = self._group(user_id)
        return self._must("delete_all", group.clear)
