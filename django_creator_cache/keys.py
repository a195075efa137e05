"""Building cache keys: one place, so no caller writes a key by hand.

``KeyManager`` joins parts with the configured separator; the backend then
adds its ``KEY_PREFIX`` and version the same way, and shortens any final key
longer than ``MAX_CACHE_KEY_LENGTH`` with a stable hash instead of rejecting it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Protocol


class _Keyed(Protocol):
    """What a key manager needs of its backend (``RedisCache`` provides it)."""

    @property
    def key_separator(self) -> str: ...

    def make_key(self, key: Any, version: int | None = None) -> str: ...


HASH_MARK = "#"
_DIGEST_CHARS = 32
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def shorten(key: str, max_length: int) -> str:
    """Return ``key`` unchanged if short enough, else its head plus a stable hash.

    The head keeps the prefix and version, so prefix scans still find the key;
    the hash is of the whole key, so two long keys never collide on their head.
    """
    if len(key) <= max_length:
        return key
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    head = key[: max(max_length - _DIGEST_CHARS - len(HASH_MARK), 0)]
    return f"{head}{HASH_MARK}{digest}"


def encodable(key: str) -> str:
    """``key`` if it is valid UTF-8 text, else a stable escaped-and-hashed stand-in.

    A str may hold lone surrogates (from ``surrogateescape`` decoding, say) that
    cannot be sent to Redis; such a key still gets its own distinct Redis key.
    """
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raw = key.encode("utf-8", "surrogatepass")
        digest = hashlib.blake2b(raw, digest_size=16).hexdigest()
        escaped = key.encode("utf-8", "backslashreplace").decode("ascii", "replace")
        return f"{escaped}{HASH_MARK}{digest}"
    return key


def glob_escape(text: str) -> str:
    """Escape Redis glob characters so ``text`` matches itself in SCAN/KEYS."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


class KeyManager:
    """Builds keys from parts for one cache alias.

    ``custom("analytics", "daily", "2024-01-15")`` gives
    ``"analytics:daily:2024-01-15"`` (with the default separator); ``full(...)``
    gives the exact Redis key, with the alias's prefix and version.
    """

    def __init__(self, cache: _Keyed) -> None:
        self._cache = cache

    @property
    def separator(self) -> str:
        return self._cache.key_separator

    def custom(self, *parts: Any) -> str:
        """A key made of ``parts`` (anything with a ``str()``), joined by the separator."""
        if not parts:
            raise ValueError("a key needs at least one part")
        return self.separator.join(str(part) for part in parts)

    def pattern(self, *parts: Any) -> str:
        """A glob matching every key under ``parts`` (for ``keys``/``delete_pattern``)."""
        return self.custom(*(glob_escape(str(part)) for part in parts), "*")

    def full(self, *parts: Any, version: int | None = None) -> str:
        """The Redis key for ``parts``, as the backend stores it."""
        return self._cache.make_key(self.custom(*parts), version=version)

    def user_all(self, user_id: Any) -> str:
        """A glob matching every per-user key of ``user_id`` (``user(user_id, ...)``)."""
        return self.pattern(self.tag("user", user_id))

    def tag(self, *parts: Any) -> str:
        """``{part:part}``: a Redis Cluster hash tag. Keys that contain it first share
        one slot, so one Lua script or pipeline can cover all of them."""
        return "{" + self.custom(*parts) + "}"

    def user(self, user_id: Any, *parts: Any) -> str:
        """A per-user key, ``{user:42}:parts``: all of a user's keys share one slot."""
        return self.custom(self.tag("user", user_id), *parts)
