"""How an alias names things in Redis: user keys, patterns, TTLs and the package's own
bookkeeping keys (invalidation indexes: ``indexes``). Mixed into ``RedisCache``; pure."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.utils.module_loading import import_string

from ..keys import encodable, glob_escape, shorten
from ..ttl import parse_ttl

if TYPE_CHECKING:
    from .options import BackendOptions


class Keying:
    """Key building for ``RedisCache`` (Django's ``make_key`` contract, long keys hashed)."""

    if TYPE_CHECKING:
        key_prefix: str
        version: int
        default_timeout: Any
        key_func: Any
        _custom_key_func: bool
        _raw_options: dict[str, Any]
        _params: dict[str, Any]

        @property
        def options(self) -> BackendOptions: ...
        @property
        def key_separator(self) -> str: ...
        @property
        def alias(self) -> str: ...

    # -- keys ------------------------------------------------------------------------------

    @cached_property
    def _internal_head(self) -> str:
        sep = self.key_separator
        return f"{self.key_prefix}{sep}dcc{sep}" if self.key_prefix else f"dcc{sep}"

    def internal_name(self, *parts: Any) -> str:
        """A key name (before ``make_key``) in the package's own namespace, for keys that
        must share the user key's version and hash tag: ``dcc:lock:<key>``."""
        sep = self.key_separator
        return f"dcc{sep}" + sep.join(str(p) for p in parts)

    def internal_key(self, *parts: str) -> str:
        """The Redis key of the package's own bookkeeping (``<KEY_PREFIX>:dcc:<parts>``):
        statistics, history, index records. The one place such keys are named."""
        return self._internal_head + self.key_separator.join(parts)

    def _separated_key(self, key: Any, key_prefix: str, version: Any) -> str:
        # Same text as Django's default key function, with our separator.
        sep = self.key_separator
        return f"{key_prefix}{sep}{version}{sep}{key!s}"

    @cached_property
    def _key_head(self) -> str | None:
        """``prefix:version:`` of the default key function, None with a custom one."""
        if self._custom_key_func:
            return None
        sep = self.key_separator
        return f"{self.key_prefix}{sep}{self.version}{sep}"

    @cached_property
    def _max_key_length(self) -> int:
        return self.options.max_key_length

    def make_key(self, key: Any, version: int | None = None) -> str:
        """Prefix and version ``key``; keys past ``MAX_CACHE_KEY_LENGTH`` are hashed."""
        head = self._key_head
        if head is not None and version is None:
            full = f"{head}{key!s}"
        else:
            version = self.version if version is None else version
            full = str(self.key_func(key, self.key_prefix, version))
        if len(full) > self._max_key_length or not full.isascii():
            return self._sendable(full)
        return full

    def make_keys(self, keys: list[Any], version: int | None) -> list[str]:
        """``make_key`` for many keys (the bulk operations' hot loop, inlined)."""
        head = self._key_head
        if head is None or version is not None:
            return [self.make_key(k, version) for k in keys]
        limit = self._max_key_length
        fulls = [f"{head}{k!s}" for k in keys]
        return [f if len(f) <= limit and f.isascii() else self._sendable(f) for f in fulls]

    def _sendable(self, full: str) -> str:
        """A key Redis can take: valid UTF-8, no longer than the limit."""
        full = encodable(full)
        if len(full) > self._max_key_length:
            return shorten(full, self._max_key_length)
        return full

    def make_and_validate_key(self, key: Any, version: int | None = None) -> str:
        # Any key is valid here: long ones are hashed, Unicode is fine.
        return self.make_key(key, version)

    def validate_key(self, key: Any) -> None:
        """Nothing to validate: Redis accepts any key, long ones are hashed."""

    def make_pattern(
        self, pattern: str, version: int | None = None, prefix: str | None = None
    ) -> str:
        """A SCAN glob for ``pattern`` under this alias's prefix and version."""
        prefix = self.key_prefix if prefix is None else prefix
        version_part = self.version if version is None else version
        return str(self.key_func(pattern, glob_escape(prefix), glob_escape(str(version_part))))

    def reverse_key(self, key: str) -> str:
        """The user key of a full Redis key (inverse of the default key function)."""
        path = self._raw_options.get("REVERSE_KEY_FUNCTION") or self._params.get(
            "REVERSE_KEY_FUNCTION"
        )
        if path:
            return str(import_string(path)(key))
        return key.split(self.key_separator, 2)[-1]

    def delete_key(self, key: Any, version: int | None, prefix: str | None) -> str:
        """The full key ``delete`` removes (``prefix`` replaces the alias's ``KEY_PREFIX``)."""
        if prefix is None:
            return self.make_key(key, version)
        return shorten(
            str(self.key_func(key, prefix, self.version if version is None else version)),
            self._max_key_length,
        )

    def clear_glob(self) -> str | None:
        """What ``clear`` deletes: a glob under ``KEY_PREFIX``, or None for the whole database."""
        if self.key_prefix:
            return f"{glob_escape(self.key_prefix)}{glob_escape(self.key_separator)}*"
        return None

    def px(self, timeout: Any) -> int | None:
        """Django timeout (seconds, None, DEFAULT_TIMEOUT) as milliseconds."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        if not isinstance(timeout, int | float):
            timeout = parse_ttl(timeout)
            if timeout is None:
                return None
        ms = int(timeout * 1000)
        return 1 if ms == 0 and timeout > 0 else ms

    # -- invalidation ------------------------------------------------------------------

    def tracks_prefix(self, prefix: str = "") -> bool:
        """Whether ``invalidate_prefix`` uses the indexes (every write under a prefix is
        indexed unless ``OPTIONS["TRACK_WRITES"]`` is False; then it scans)."""
        return self.options.track_writes
