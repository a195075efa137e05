"""Sessions by session id, and every session of a user.

Failure choice: reads fail open (no session: the visitor is logged out, which
is safe); writes and deletes fail closed (``CacheUnavailable``): a login that
was not stored must not look stored, and a logout must not silently fail.

"Log out everywhere" is complete by construction, not by finding every
session: each user has an *epoch* (``{user:<id>}:epoch``), every session of a
user records the epoch it was written under, and a session whose epoch is
older than its user's is refused when loaded. ``delete_user_sessions`` moves
the epoch forward (atomically with emptying the user's index), so a session
written by a login racing it, which read the old epoch, is refused as well:
after the call returns, no session written before its epoch move loads. The
epoch only grows (it is at least Redis' clock in ms), and its key has no TTL,
so an expired or deleted key cannot bring an old session back.

A session id is a bearer credential: it is stored by its SHA-256 (``session_name``),
as auth tokens are, so key listings (the admin's key browser), the user index and
memory dumps never show one that could be replayed as a cookie.

Loading a user's session reads the session and its user's epoch: one script on
a single server or Sentinel (the session names its epoch key), two round trips
on a Cluster, where the two keys live in different slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ..backend.execution import pipeline
from ..backend.scripts import LuaScript
from ..ttl import TTLLike
from .base import DomainManager
from .fields import text
from .storage import UserIndexedStore, credential_name

# The stored name of a session: the SHA-256 of its id, hex.
session_name = credential_name

_LOG_OUT_EVERYWHERE = LuaScript(
    """
-- KEYS[1]: the user's epoch, KEYS[2]: the user's session index (same slot).
-- Moves the epoch past every value it had (and past Redis' clock in ms, so it never goes
-- back even if the key was lost), then returns the ids the index listed and empties it.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = math.max((tonumber(redis.call('GET', KEYS[1])) or 0) + 1, now)
redis.call('SET', KEYS[1], string.format('%d', epoch))
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
return ids
"""
)


_LOAD = LuaScript(
    """
-- KEYS[1]: a session hash. Returns its data, user, epoch, epoch key and that key's value.
-- The epoch key is read from the hash, so not declared: single server and Sentinel only.
local v = redis.call('HMGET', KEYS[1], 'd', 'u', 'e', 'k')
local current = false
if v[4] then current = redis.call('GET', v[4]) end
return {v[1], v[2], v[3], v[4], current}
"""
)


@dataclass(frozen=True)
class LoadedSession:
    """A session as stored: its data, its user ('' if anonymous) and its epoch."""

    data: Any
    user: str
    epoch: int


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

    def epoch_key(self, user_id: Any) -> str:
        """The Redis key of ``user_id``'s epoch (in the same slot as their index)."""
        return self._user_key(user_id, "epoch")

    def set(
        self,
        session_id: str,
        data: Any,
        *,
        user_id: Any = None,
        ttl: TTLLike | object = DEFAULT_TIMEOUT,
        nx: bool = False,
        xx: bool = False,
        epoch: int | None = None,
    ) -> bool:
        """Store a session (``nx``: only a new one, ``xx``: only an existing one).

        ``user_id`` puts it in that user's index (and takes it out of a previous
        user's). ``epoch``: the user's epoch this session was loaded under (None:
        read it now, e.g. at login). Returns False only when ``nx``/``xx`` forbade
        the write.
        """
        mode = "nx" if nx else "xx" if xx else ""
        store = self._store
        user = "" if user_id is None else str(user_id)

        def write(client: Any) -> bool:
            extra: dict[str, str | int] = {}
            if user:
                extra["e"] = self._current_epoch(client, user) if epoch is None else epoch
                extra["k"] = self.epoch_key(user)
            return store.put(client, session_name(session_id), data, user_id, ttl, mode, extra)

        return self._write("set", write, False)

    def load(self, session_id: str) -> LoadedSession | None:
        """The session if it exists and was not logged out everywhere since it was written.

        Fails closed (``CacheUnavailable``), so a caller can tell "no such
        session" from "Redis did not answer" (a logout must still delete it then).
        """
        name = session_name(session_id)
        return self._must("load", lambda c: self._load(c, name))

    def get(self, session_id: str, default: Any = None) -> Any:
        name = session_name(session_id)
        found = self._read("get", lambda c: self._load(c, name), None)
        return default if found is None else found.data

    def user_of(self, session_id: str) -> str | None:
        """The user id a session was stored with (None: anonymous or no such session)."""
        name = session_name(session_id)
        found = self._read("user_of", lambda c: self._load(c, name), None)
        return found.user if found is not None and found.user else None

    def exists(self, session_id: str) -> bool:
        """Whether the id is taken (also by a session refused since a log-out-everywhere)."""
        store, name = self._store, session_name(session_id)
        return self._read("exists", lambda c: store.exists(c, name), False)

    def delete(self, session_id: str) -> bool:
        """Delete a session and take it out of its user's index; True if it existed."""
        store, name = self._store, session_name(session_id)
        return self._write("delete", lambda c: store.delete(c, name), False)

    def user_sessions(self, user_id: Any) -> list[str]:
        """Stored names (``session_name`` of the ids) of ``user_id``'s live sessions (not
        those refused by their epoch)."""
        no_sessions: list[str] = []
        return self._read("user_sessions", lambda c: self._live_ids(c, user_id), no_sessions)

    def delete_user_sessions(self, user_id: Any) -> int:
        """Log ``user_id`` out everywhere; returns how many sessions were deleted.

        Always fails closed: a "log out everywhere" that did not happen must say
        so. Once it returns, no session of the user written before it loads,
        including one a concurrent login was writing (see the module docstring).
        """
        store = self._store
        keys = [self.epoch_key(user_id), store.index_key(user_id)]

        def log_out(client: Any) -> int:
            ids = [text(i) for i in _LOG_OUT_EVERYWHERE(client, keys)]
            if not ids:
                return 0
            return int(client.delete(*[store.entry_key(i) for i in ids]))

        return self._must("delete_user_sessions", log_out)

    # -- internals -------------------------------------------------------------------------

    def _current_epoch(self, client: Any, user: str) -> int:
        return int(client.get(self.epoch_key(user)) or 0)

    def _load(self, client: Any, name: str) -> LoadedSession | None:
        store = self._store
        key = store.entry_key(name)
        if self.cache.cluster:
            raw, user, epoch = client.hmget(key, ["d", "u", "e"])
            named = current = None
        else:
            raw, user, epoch, named, current = _LOAD(client, [key])
        if raw is None:
            return None
        user = text(user or b"")
        stored_epoch = int(epoch or 0)
        if user and named is None:  # a Cluster, or a session stored without its epoch key
            current = self._current_epoch(client, user)
        if user and stored_epoch < int(current or 0):
            store.delete(client, name)  # logged out everywhere since: gone for good
            return None
        missing = object()
        data = self._decode(key, raw, missing)
        return None if data is missing else LoadedSession(data, user, stored_epoch)

    def _live_ids(self, client: Any, user_id: Any) -> list[str]:
        ids = self._store.ids(client, user_id)
        if not ids:
            return []
        pipe = pipeline(client)  # on a Cluster: one request per node
        for entry_id in ids:
            pipe.hget(self._store.entry_key(entry_id), "e")
        epochs = pipe.execute()
        current = self._current_epoch(client, str(user_id))
        return [i for i, e in zip(ids, epochs, strict=True) if int(e or 0) >= current]
