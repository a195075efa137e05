"""``SESSION_ENGINE = "django_creator_cache.sessions"``: sessions in this cache.

Like Django's cache session engine, plus "log out this user everywhere": each
session of a logged-in user is listed in a per-user index, kept up to date on
save and delete and pruned as sessions expire, and refused once its user's
epoch moved past it (``SessionManager``). Sessions live ``CACHE_TTL_SESSION``
seconds (the session TTL policy, default one day; ``set_expiry`` still works
per session), in ``SESSION_CACHE_ALIAS``.

When Redis fails:

* loading gives an empty session (the visitor is logged out for this request),
  but the cookie's session key is kept, so a logout still deletes it;
* saving raises ``CacheUnavailable``: a login that was not stored must not
  look stored;
* deleting (``flush()`` at logout, ``delete()``, ``cycle_key()``) raises
  ``CacheUnavailable``, so the logout answers an error instead of pretending.
  The key is also kept in a per-process list of *pending revocations*: this
  process refuses it from then on, and a background thread deletes it once a
  second until Redis answers, so the old cookie stops working within about a
  second of recovery (everywhere, as long as this process lives);
* ``delete_user_sessions`` ("log out everywhere") raises ``CacheUnavailable``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError

from .exceptions import CacheUnavailable
from .managers.sessions import SessionManager
from .ttl import policy

# Tries at a fresh random key before giving up (a clash is ~impossible: 32 chars).
_CREATE_ATTEMPTS = 100
logger = logging.getLogger("django_creator_cache.sessions")


def _alias() -> str:
    return str(settings.SESSION_CACHE_ALIAS)


def _manager(alias: str | None = None) -> SessionManager:
    return SessionManager(_alias() if alias is None else alias)


class PendingRevocations:
    """Session keys whose delete did not reach Redis, deleted again until it does.

    Per process. Bounded: past ``limit`` keys the oldest are forgotten (they
    still failed closed: their logout answered an error). A key whose alias is no
    longer a Redis cache of this package is dropped with a warning.
    """

    interval = 1.0
    limit = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], None] = {}  # (alias, session key), oldest first
        self._thread: threading.Thread | None = None

    def __contains__(self, item: tuple[str, str]) -> bool:
        return item in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, alias: str, session_key: str) -> None:
        with self._lock:
            self._keys[(alias, session_key)] = None
            while len(self._keys) > self.limit:
                del self._keys[next(iter(self._keys))]
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="dcc-session-revocations", daemon=True
                )
                self._thread.start()

    def retry(self) -> bool:
        """Delete every pending key; stops at the first failure. True when none is left."""
        for alias, session_key in list(self._keys):
            try:
                _manager(alias).delete(session_key)
            except CacheUnavailable:
                return False
            except Exception as exc:  # the alias changed under us (settings): nothing to retry
                logger.warning("pending session revocation on %r dropped: %r", alias, exc)
            with self._lock:
                self._keys.pop((alias, session_key), None)
        return True

    def forget(self) -> None:
        """Drop every pending key (tests)."""
        with self._lock:
            self._keys.clear()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            if self.retry():
                with self._lock:
                    if not self._keys:
                        self._thread = None
                        return


pending_revocations = PendingRevocations()


class SessionStore(SessionBase):
    """Sessions as ``session:<key>`` entries of ``SESSION_CACHE_ALIAS``."""

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        # The cookie's key when Redis could not read it: a logout must still delete it.
        self._unloaded_key: str | None = None
        # User and epoch the session was loaded under (a save keeps that epoch).
        self._loaded_user = ""
        self._loaded_epoch: int | None = None

    def get_session_cookie_age(self) -> int:
        """The session TTL policy (``CACHE_TTL_SESSION``), also the cookie's max age."""
        return policy("session")

    def load(self) -> dict[str, Any]:
        key = self.session_key
        if key is not None:
            alias = _alias()
            if (alias, key) in pending_revocations:
                # Its logout failed: refused here whatever Redis says, deleted again now.
                pending_revocations.retry()
                self._unloaded_key = key
            else:
                try:
                    found = _manager(alias).load(key)
                except CacheUnavailable:
                    # Fail open for this request, but remember whose session it was.
                    self._unloaded_key = key
                    found = None
                if found is not None and isinstance(found.data, dict):
                    self._loaded_user, self._loaded_epoch = found.user, found.epoch
                    return found.data
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
        if self.get_expiry_age() <= 0:  # expired already (set_expiry in the past): as
            if not must_create:  # Django's cache engine, it is gone, not kept as it was
                self.delete(self.session_key)
            return None
        user = data.get(SESSION_KEY)
        same_user = user is not None and str(user) == self._loaded_user
        stored = _manager().set(
            self.session_key,
            data,
            user_id=user,
            ttl=self.get_expiry_age(),
            nx=must_create,
            xx=not must_create,
            epoch=self._loaded_epoch if same_user else None,
        )
        if not stored:
            raise CreateError if must_create else UpdateError
        return None

    def delete(self, session_key: str | None = None) -> None:
        """Delete a session; fails closed (``CacheUnavailable``) when Redis cannot be reached.

        Without ``session_key``: this session, or the cookie's one if Redis
        could not load it (a logout during an outage must not silently pass).
        """
        unloaded = session_key is None and self.session_key is None
        if session_key is None:
            session_key = self.session_key or self._unloaded_key
            if session_key is None:
                return
        alias = _alias()
        try:
            _manager(alias).delete(session_key)
        except CacheUnavailable:
            pending_revocations.add(alias, session_key)
            raise
        if unloaded:
            self._unloaded_key = None

    @classmethod
    def clear_expired(cls) -> None:
        """Nothing to do: Redis expires sessions, and user indexes prune themselves."""

    @classmethod
    def user_session_keys(cls, user_id: Any) -> list[str]:
        """Stored names of ``user_id``'s live sessions: ``session_name(key)`` (a SHA-256,
        as a session key is never stored in clear), to count them or find this one."""
        return _manager().user_sessions(user_id)

    @classmethod
    def delete_user_sessions(cls, user_id: Any) -> int:
        """Log ``user_id`` out everywhere; returns how many sessions were deleted.

        Raises ``CacheUnavailable`` when Redis cannot be reached. Once it
        returns, no session of the user written before it loads again, even
        one a concurrent login was writing.
        """
        return _manager().delete_user_sessions(user_id)
