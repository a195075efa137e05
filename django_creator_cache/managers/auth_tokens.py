"""Auth tokens (token -> user and data) and per-user auth data.

Tokens are stored under a hash of the token (``token:<sha256>``), so key
listings, logs and memory dumps never show a usable token; each user has an
index of its tokens, pruned as they expire, for "revoke every token".

Failure choice: reads fail open (an unknown token: the request is not
authenticated, which is safe); writes and revocations fail closed
(``CacheUnavailable``): a token that was not stored, or not revoked, must say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ..ttl import TTLLike
from .base import DomainManager
from .storage import UserIndexedStore, credential_name


@dataclass(frozen=True)
class TokenInfo:
    """Whose token it is, and what was stored with it (scopes, device, ...)."""

    user_id: str
    data: Any


# The stored name of a token: its SHA-256, hex.
token_id = credential_name


class AuthTokenManager(DomainManager):
    """Tokens ``token:<sha256>`` indexed in ``{user:<id>}:tokens``; user auth data in
    ``{user:<id>}:auth``. TTL policy ``session``."""

    policy = "session"
    reads_fail_open = True
    writes_fail_open = False

    @property
    def _store(self) -> UserIndexedStore:
        return UserIndexedStore(self, "token", "tokens")

    def set(
        self, token: str, user_id: Any, data: Any = None, *, ttl: TTLLike | object = DEFAULT_TIMEOUT
    ) -> bool:
        store, name = self._store, token_id(token)
        return self._write("set", lambda c: store.put(c, name, data, user_id, ttl), False)

    def get(self, token: str) -> TokenInfo | None:
        store, name = self._store, token_id(token)
        found = self._read("get", lambda c: store.get_with_user(c, name), None)
        return None if found is None else TokenInfo(found[1], found[0])

    def clear(self, token: str) -> bool:
        """Revoke one token; True if it existed."""
        store, name = self._store, token_id(token)
        return self._write("clear", lambda c: store.delete(c, name), False)

    def clear_user(self, user_id: Any) -> int:
        """Revoke every token of ``user_id``; returns how many there were."""
        store = self._store
        return self._must("clear_user", lambda c: store.delete_user(c, user_id))

    def count_user(self, user_id: Any) -> int:
        """How many live tokens ``user_id`` has."""
        store = self._store
        no_tokens: list[str] = []
        return len(self._read("count_user", lambda c: store.ids(c, user_id), no_tokens))

    # -- per-user auth data (permissions, profile bits used on every request) ----------

    def set_user_data(
        self, user_id: Any, data: Any, *, ttl: TTLLike | object = DEFAULT_TIMEOUT
    ) -> bool:
        key, value, ttl_ms = self._user_key(user_id, "auth"), self._encode(data), self.ttl_ms(ttl)

        def write(client: Any) -> bool:
            if ttl_ms:
                return bool(client.execute_command("SET", key, value, "PX", ttl_ms))
            return bool(client.execute_command("SET", key, value))

        return self._write("set_user_data", write, False)

    def get_user_data(self, user_id: Any, default: Any = None) -> Any:
        key = self._user_key(user_id, "auth")
        return self._read(
            "get_user_data",
            lambda c: self._decode(key, c.execute_command("GET", key), default),
            default,
        )

    def clear_user_data(self, user_id: Any) -> bool:
        key = self._user_key(user_id, "auth")
        return self._write("clear_user_data", lambda c: bool(c.delete(key)), False)
