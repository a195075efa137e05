"""What every domain manager shares: its alias, its TTL policy, its failure choice.

A manager holds only an alias name; the backend is looked up per call
(``caches[alias]``), so settings overrides and per-thread backends just work.
Redis commands go through ``cache_aside.commands.run``, which turns every
failure into ``CacheUnavailable``; each manager then applies its documented
choice: *fail open* (a read misses, a write reports it did nothing) or *fail
closed* (the ``CacheUnavailable`` reaches the caller, who must know).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.exceptions import ImproperlyConfigured

from ..backend.cache import RedisCache
from ..cache_aside.commands import run
from ..exceptions import CacheUnavailable, CorruptValue
from ..ttl import TTLLike, parse_ttl
from ..ttl import policy as ttl_policy

T = TypeVar("T")


class DomainManager:
    """Base class: one alias, one TTL policy, one failure choice for reads and writes."""

    #: TTL policy name (``CACHE_TTL_<NAME>``) used when a call gives no ``ttl``.
    policy: ClassVar[str] = "default"
    #: Whether a failed read returns its "nothing there" value instead of raising.
    reads_fail_open: ClassVar[bool] = True
    #: Whether a failed write returns False/None instead of raising.
    writes_fail_open: ClassVar[bool] = True

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias

    def __repr__(self) -> str:
        return f"<{type(self).__name__} alias={self.alias!r}>"

    @property
    def cache(self) -> RedisCache:
        cache = caches[self.alias]
        if not isinstance(cache, RedisCache):
            raise ImproperlyConfigured(
                f"CACHES[{self.alias!r}] is {type(cache).__module__}.{type(cache).__name__}; "
                "domain managers need django_creator_cache.backend.RedisCache"
            )
        return cache

    def ttl_ms(self, ttl: TTLLike | object = DEFAULT_TIMEOUT) -> int:
        """``ttl`` (default: this manager's policy) in ms; 0 means "never expire"."""
        seconds = ttl_policy(self.policy) if ttl is DEFAULT_TIMEOUT else parse_ttl(ttl)  # type: ignore[arg-type]
        if seconds is None:
            return 0
        if seconds <= 0:
            raise ValueError(f"{type(self).__name__}: a TTL must be positive or None, got {ttl!r}")
        return max(int(seconds * 1000), 1)

    # -- running commands under the failure choice ---------------------------------

    def _read(self, operation: str, action: Callable[[Any], T], missing: T) -> T:
        return self._call(operation, action, missing, self.reads_fail_open)

    def _write(self, operation: str, action: Callable[[Any], T], skipped: T) -> T:
        return self._call(operation, action, skipped, self.writes_fail_open)

    def _must(self, operation: str, action: Callable[[Any], T]) -> T:
        """An operation that always fails closed (e.g. "log out everywhere")."""
        return run(self.cache, f"{self._name}.{operation}", action)

    def _call(self, operation: str, action: Callable[[Any], T], fallback: T, fail_open: bool) -> T:
        try:
            return run(self.cache, f"{self._name}.{operation}", action)
        except CacheUnavailable:
            if fail_open:
                return fallback
            raise

    @property
    def _name(self) -> str:
        return type(self).__name__

    # -- values and keys ---------------------------------------------------------------

    def _key(self, *parts: Any) -> str:
        """The full Redis key of ``parts`` (prefix, version, hashed if too long)."""
        cache = self.cache
        return cache.keys_manager.full(*parts)

    def _user_key(self, user_id: Any, *parts: Any) -> str:
        """The full Redis key of a per-user key (``{user:42}:...``, one slot per user)."""
        cache = self.cache
        return cache.make_key(cache.keys_manager.user(user_id, *parts))

    def _encode(self, value: Any) -> bytes | int:
        return self.cache.codec.encode(value)

    def _decode(self, key: str, raw: bytes | None, missing: Any = None) -> Any:
        """A stored value, or ``missing`` if there is none or it is unreadable."""
        if raw is None:
            return missing
        try:
            return self.cache.decode(raw, key)
        except CorruptValue:
            return missing
