"""The Redis layouts the domain managers share, written once.

* ``replace_hash``: a record as one hash, replaced and given its TTL atomically.
* ``SlotGroup``: named entries under one hash tag (``{user:42}``) plus an index
  hash (name -> key) in the same slot, so "list" and "delete everything" are
  one Lua call on one node, on Redis Cluster too, never a keyspace scan.
* ``UserIndexedStore``: entries found by their own id (session id, token),
  each remembering its user, plus a per-user sorted set of ids scored by
  expiry, so "every session of this user" is pruned of expired ones by score.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ..backend.execution import pipeline
from ..backend.scripts import LuaScript
from ..ttl import TTLLike
from .fields import text

if TYPE_CHECKING:
    from .base import DomainManager

_REPLACE_HASH = LuaScript(
    """
-- KEYS[1]: the hash. ARGV[1]: TTL in ms (0: none). ARGV[2..]: field, value, ...
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if ARGV[1] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
"""
)


def replace_hash(client: Any, key: str, ttl_ms: int, fields: Mapping[str, str | int]) -> bool:
    """Make ``key`` exactly ``fields`` (fields absent from it are gone), with ``ttl_ms``."""
    flat = [item for pair in fields.items() for item in pair]
    return bool(_REPLACE_HASH(client, [key], [ttl_ms, *flat]))


# -- SlotGroup ---------------------------------------------------------------------------

_GROUP_SET = LuaScript(
    """
-- KEYS[1]: entry, KEYS[2]: index (same slot). ARGV: value, TTL ms (0: none), name.
local fresh = redis.call('EXISTS', KEYS[2]) == 0
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('HSET', KEYS[2], ARGV[3], KEYS[1])
-- The index lives as long as its longest-lived entry.
if ttl == 0 then
  redis.call('PERSIST', KEYS[2])
else
  local left = redis.call('PTTL', KEYS[2])
  if fresh or (left >= 0 and left < ttl) then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return 1
"""
)
_GROUP_DELETE = LuaScript(
    """
-- KEYS[1]: entry, KEYS[2]: index. ARGV[1]: name.
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
"""
)
_GROUP_ITEMS = LuaScript(
    """
-- KEYS[1]: index. Returns name, value, ... of live entries and forgets expired ones.
local index = redis.call('HGETALL', KEYS[1])
local found = {}
for i = 1, #index, 2 do
  local value = redis.call('GET', index[i + 1])
  if value then
    found[#found + 1] = index[i]
    found[#found + 1] = value
  else
    redis.call('HDEL', KEYS[1], index[i])
  end
end
return found
"""
)
_GROUP_CLEAR = LuaScript(
    """
-- KEYS[1]: index. Deletes every entry it lists, then itself; returns how many existed.
local deleted = 0
for _, key in ipairs(redis.call('HVALS', KEYS[1])) do
  deleted = deleted + redis.call('DEL', key)
end
redis.call('DEL', KEYS[1])
return deleted
"""
)


def credential_name(secret: str) -> str:
    """The stored name of a bearer credential (a session id, an auth token): its SHA-256,
    hex. Key names, indexes and dumps then show nothing that could be replayed."""
    return hashlib.sha256(secret.encode()).hexdigest()


class SlotGroup:
    """Named entries sharing one hash tag, listed by an index hash in the same slot.

    ``base`` are the key parts of the group, starting with a hash tag
    (``KeyManager.tag``/``user``); the index is ``base`` itself, an entry is
    ``base + (name,)``. Each entry keeps its own TTL.
    """

    def __init__(self, manager: DomainManager, *base: str) -> None:
        self._manager = manager
        self._base = base

    def _entry(self, name: str) -> str:
        return self._manager._key(*self._base, name)

    def _index(self) -> str:
        return self._manager._key(*self._base)

    def set(self, client: Any, name: str, value: Any, ttl_ms: int) -> bool:
        encoded = self._manager._encode(value)
        return bool(_GROUP_SET(client, [self._entry(name), self._index()], [encoded, ttl_ms, name]))

    def get(self, client: Any, name: str, missing: Any) -> Any:
        entry = self._entry(name)
        return self._manager._decode(entry, client.execute_command("GET", entry), missing)

    def delete(self, client: Any, name: str) -> bool:
        return bool(_GROUP_DELETE(client, [self._entry(name), self._index()], [name]))

    def items(self, client: Any) -> dict[str, Any]:
        flat = _GROUP_ITEMS(client, [self._index()])
        missing = object()
        found = {
            text(name): self._manager._decode(self._entry(text(name)), raw, missing)
            for name, raw in zip(flat[::2], flat[1::2], strict=True)
        }
        return {name: value for name, value in found.items() if value is not missing}

    def clear(self, client: Any) -> int:
        return int(_GROUP_CLEAR(client, [self._index()]))


# -- UserIndexedStore ------------------------------------------------------------------

_INDEXED_PUT = LuaScript(
    """
-- KEYS[1]: entry hash. ARGV: data, user ('' = none), TTL ms (0: none), mode (nx, xx or ''),
-- then more field, value pairs. Returns the previous user ('' if none), or nil if the mode
-- forbade the write.
local exists = redis.call('EXISTS', KEYS[1]) == 1
if (ARGV[4] == 'nx' and exists) or (ARGV[4] == 'xx' and not exists) then return false end
local previous = redis.call('HGET', KEYS[1], 'u') or ''
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'u', ARGV[2], unpack(ARGV, 5))
if ARGV[3] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return previous
"""
)
_INDEXED_DELETE = LuaScript(
    """
-- KEYS[1]: entry hash. Deletes it; returns its user ('' if none), nil if it did not exist.
local user = redis.call('HGET', KEYS[1], 'u')
if redis.call('DEL', KEYS[1]) == 0 then return false end
return user or ''
"""
)
_INDEX_POP = LuaScript(
    """
-- KEYS[1]: a user's index. Returns every id in it and deletes it, atomically.
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return ids
"""
)


class UserIndexedStore:
    """Entries by id (``kind:<id>``, a hash of data and user), indexed per user.

    The per-user index (``{user:42}:<index>``) is a sorted set of ids scored by
    their expiry time (ms); it expires with its longest-lived entry. Listing
    drops ids whose score has passed and ids whose entry is gone (evicted,
    deleted elsewhere), so the list stays true as entries expire.
    """

    def __init__(self, manager: DomainManager, kind: str, index: str) -> None:
        self._manager = manager
        self._kind = kind
        self._index_name = index

    def entry_key(self, entry_id: str) -> str:
        return self._manager._key(self._kind, entry_id)

    def index_key(self, user_id: Any) -> str:
        return self._manager._user_key(user_id, self._index_name)

    def put(
        self,
        client: Any,
        entry_id: str,
        data: Any,
        user_id: Any,
        ttl: TTLLike | object = DEFAULT_TIMEOUT,
        mode: str = "",
        extra: Mapping[str, str | int] | None = None,
    ) -> bool:
        """Store ``data`` for ``entry_id`` (``mode`` ``nx``: only if new, ``xx``: only if
        it exists) and keep ``user_id``'s index (and a previous user's) up to date.
        ``extra``: more fields of the entry's hash (e.g. a session's epoch)."""
        ttl_ms = self._manager.ttl_ms(ttl)
        user = "" if user_id is None else str(user_id)
        encoded = self._manager._encode(data)
        key = self.entry_key(entry_id)
        more = [item for pair in (extra or {}).items() for item in pair]
        previous = _INDEXED_PUT(client, [key], [encoded, user, ttl_ms, mode, *more])
        if previous is None:
            return False
        previous = text(previous)
        if previous and previous != user:
            client.zrem(self.index_key(previous), entry_id)
        if user:
            now = _now_ms()
            self._index(client, user, entry_id, now + ttl_ms if ttl_ms else None, now)
        return True

    def _index(
        self, client: Any, user: str, entry_id: str, expires_at: int | None, now: int
    ) -> None:
        index = self.index_key(user)
        pipe = pipeline(client)  # one key: one round trip in every mode
        pipe.zadd(index, {entry_id: "+inf" if expires_at is None else expires_at})
        pipe.zremrangebyscore(index, "-inf", now)
        if expires_at is None:
            pipe.persist(index)
        else:
            pipe.pexpireat(index, expires_at, nx=True)  # just created: no TTL yet
            pipe.pexpireat(index, expires_at, gt=True)  # never shorten it
        pipe.execute()

    def get(self, client: Any, entry_id: str, missing: Any) -> Any:
        key = self.entry_key(entry_id)
        return self._manager._decode(key, client.hget(key, "d"), missing)

    def get_with_user(self, client: Any, entry_id: str) -> tuple[Any, str] | None:
        """``(data, user id)`` of an entry ('' for no user), or None."""
        key = self.entry_key(entry_id)
        raw, user = client.hmget(key, ["d", "u"])
        missing = object()
        data = self._manager._decode(key, raw, missing)
        return None if data is missing else (data, text(user or b""))

    def exists(self, client: Any, entry_id: str) -> bool:
        return bool(client.exists(self.entry_key(entry_id)))

    def delete(self, client: Any, entry_id: str) -> bool:
        user = _INDEXED_DELETE(client, [self.entry_key(entry_id)])
        if user is None:
            return False
        if user:
            client.zrem(self.index_key(text(user)), entry_id)
        return True

    def ids(self, client: Any, user_id: Any) -> list[str]:
        """Ids of ``user_id``'s live entries; expired and vanished ones are forgotten."""
        index = self.index_key(user_id)
        pipe = pipeline(client)
        pipe.zremrangebyscore(index, "-inf", _now_ms())
        pipe.zrange(index, 0, -1)
        ids = [text(i) for i in pipe.execute()[1]]
        if not ids:
            return []
        check = pipeline(client)  # on a Cluster: one request per node
        for entry_id in ids:
            check.exists(self.entry_key(entry_id))
        alive = check.execute()
        gone = [entry_id for entry_id, found in zip(ids, alive, strict=True) if not found]
        if gone:
            client.zrem(index, *gone)
        return [entry_id for entry_id, found in zip(ids, alive, strict=True) if found]

    def delete_user(self, client: Any, user_id: Any) -> int:
        """Delete every entry of ``user_id``; returns how many existed."""
        ids = [text(i) for i in _INDEX_POP(client, [self.index_key(user_id)])]
        if not ids:
            return 0
        return int(client.delete(*[self.entry_key(i) for i in ids])) if ids else 0


def _now_ms() -> int:
    return int(time.time() * 1000)
