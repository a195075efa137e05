"""``SESSION_ENGINE = "django_creator_cache.sessions"``: sessions in this cache.

Like Django's cache session engine, plus "log out this user everywhere": each
session of a logged-in user is listed in a per-user index, kept up to date on
save and delete and pruned as sessions expire (``SessionManager``). Sessions
live ``CACHE_TTL_SESSION`` seconds (the session TTL policy, default one day;
``set_expiry`` still works per session), in ``SESSION_CACHE_ALIAS``.

When Redis fails, loading gives an empty session (the visitor is logged out)
and saving raises ``CacheUnavailable``: a login that was not stored must not
look stored.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError

from .managers.sessions import SessionManager
from .ttl import policy

# Tries at a fresh random key before giving up (a clash is ~impossible: 32 chars).
_CREATE_ATTEMPTS = 100


def _manager() -> SessionManager:
    return SessionManager(settings.SESSION_CACHE_ALIAS)


class SessionStore(SessionBase):
    """Sessions as ``session:<key>`` entries of ``SESSION_CACHE_ALIAS``."""

    def get_session_cookie_age(self) -> int:
        """The session TTL policy (``CACHE_TTL_SESSION``), also the cookie's max age."""
        return policy("session")

    def load(self) -> dict[str, Any]:
        if self.session_key is not None:
            data = _manager().get(self.session_key)
            if isinstance(data, dict):
                return data
        self._session_key = None
        return {}

    def exists(self, session_key: str | None) -> bool:
        if not session_key:
            return False
        return _manager().exists(session_key)

    def create(self) -> None:
        for _ in range(_CREATE_ATTEMPTS):
            # SessionBase's own helpers (django-stubs leave the private ones out)
            self._session_key = self._get_new_session_key()  # type: ignore[attr-defined]
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError("Unable to create a new session key.")

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)  # type: ignore[attr-defined]
        stored = _manager().set(
            self.session_key,
            data,
            user_id=data.get(SESSION_KEY),
            ttl=self.get_expiry_age(),
            nx=must_create,
            xx=not must_create,
        )
        if not stored:
            raise CreateError if must_create else UpdateError
        return None

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        _manager().delete(session_key)

    @classmethod
    def clear_expired(cls) -> None:
        """Nothing to do: Redis expires sessions, and user indexes prune themselves."""

    @classmethod
    def user_session_keys(cls, user_id: Any) -> list[str]:
        """Keys of ``user_id``'s live sessions."""
        return _manager().user_sessions(user_id)

    @classmethod
    def delete_user_sessions(cls, user_id: Any) -> int:
        """Log ``user_id`` out everywhere; returns how many sessions were deleted."""
        return _manager().delete_user_sessions(user_id)
