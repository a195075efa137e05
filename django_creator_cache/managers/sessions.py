"""Sessions by session id, and every session of a user.

Failure choice: reads fail open (no session: the visitor is logged out, which
is safe); writes and deletes fail closed (``CacheUnavailable``): a login that
was not stored must not look stored, and a logout must not silently fail.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ..ttl import TTLLike
from .base import DomainManager
from .storage import UserIndexedStore


class SessionManager(DomainManager):
    """Session data under ``session:<id>``, indexed per user in ``{user:<id>}:sessions``.

    TTL policy ``session`` (``CACHE_TTL_SESSION``). The per-user index is pruned
    as sessions expire, so ``user_sessions`` lists live sessions only.
    """

    policy = "session"
    reads_fail_open = True
    writes_fail_open = False

    @property
    def _store(self) -> UserIndexedStore:
        return UserIndexedStore(self, "session", "sessions")

    def set(
        self,
        session_id: str,
        data: Any,
        *,
        user_id: Any = None,
        ttl: TTLLike | object = DEFAULT_TIMEOUT,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        """Store a session (``nx``: only a new one, ``xx``: only an existing one).

        ``user_id`` puts it in that user's index (and takes it out of a previous
        user's). Returns False only when ``nx``/``xx`` forbade the write.
        """
        mode = "nx" if nx else "xx" if xx else ""
        store = self._store
        return self._write(
            "set", lambda c: store.put(c, session_id, data, user_id, ttl, mode), False
        )

    def get(self, session_id: str, default: Any = None) -> Any:
        store = self._store
        return self._read("get", lambda c: store.get(c, session_id, default), default)

    def user_of(self, session_id: str) -> str | None:
        """The user id a session was stored with (None: anonymous or no such session)."""
        store = self._store
        found = self._read("user_of", lambda c: store.get_with_user(c, session_id), None)
        if found is None or not found[1]:
            return None
        return found[1]

    def exists(self, session_id: str) -> bool:
        store = self._store
        return self._read("exists", lambda c: store.exists(c, session_id), False)

    def delete(self, session_id: str) -> bool:
        """Delete a session and take it out of its user's index; True if it existed."""
        store = self._store
        return self._write("delete", lambda c: store.delete(c, session_id), False)

    def user_sessions(self, user_id: Any) -> list[str]:
        """Ids of ``user_id``'s live sessions."""
        store = self._store
        no_sessions: list[str] = []
        return self._read("user_sessions", lambda c: store.ids(c, user_id), no_sessions)

    def delete_user_sessions(self, user_id: Any) -> int:
        """Log ``user_id`` out everywhere; returns how many sessions were deleted.

        Always fails closed: a "log out everywhere" that did not happen must say so.
        """
        store = self._store
        return self._must("delete_user_sessions", lambda c: store.delete_user(c, user_id))
