"""Per-alias configuration: ``LOCATION`` and ``OPTIONS`` resolved once, typed.

Package-wide settings (``conf``) fill whatever ``OPTIONS`` leaves out. Errors
here carry the setting's name; the system checks call the same code at
start-up so a bad value fails there, not at the first request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from .. import conf
from ..redis_urls import redact
from . import signing
from .codec import DEFAULT_COMPRESS_MIN_LENGTH

MODES = ("single", "sentinel", "cluster")
# Every OPTIONS key this backend reads (or passes on to django-redis / redis-py).
KNOWN_OPTIONS = frozenset(
    {
        "ALIAS", "CIRCUIT_COOLDOWN", "CIRCUIT_FAILURES", "CLUSTER", "CLUSTER_KWARGS",
        "COMPRESS", "COMPRESSOR", "COMPRESS_MIN_LENGTH", "CONNECTION_POOL_CLASS",
        "CONNECTION_POOL_KWARGS", "IGNORE_EXCEPTIONS", "INVALIDATION_PREFIXES", "KEY_SEPARATOR",
        "LOCAL_FALLBACK", "LOCAL_FALLBACK_SIZE", "LOCAL_TIER", "MAX_CONNECTIONS", "MAX_KEY_LENGTH",
        "MODE",
        "PARSER_CLASS", "PASSWORD", "PICKLE_VERSION", "PREFIX_DEPTH", "REDIS_CLIENT_KWARGS",
        "RETRY_ATTEMPTS", "RETRY_DELAY", "REVERSE_KEY_FUNCTION", "SENTINELS", "SENTINEL_KWARGS",
        "SERIALIZER", "SIGNED", "SIGNING_KEY", "SOCKET_CONNECT_TIMEOUT", "SOCKET_TIMEOUT",
        "STATS_FLUSH_INTERVAL", "STRICT", "TRACK_WRITES", "USERNAME",
    }
)  # fmt: skip
URL_SCHEMES = ("redis", "rediss", "unix")


def split_location(location: str | list[str] | tuple[str, ...]) -> list[str]:
    """``LOCATION`` as a list of URLs (comma separated string or a list)."""
    urls = location.split(",") if isinstance(location, str) else list(location)
    urls = [u.strip() for u in urls if u and u.strip()]
    if not urls:
        raise ImproperlyConfigured(
            "CACHES LOCATION is empty: give a redis://, rediss:// or unix:// URL"
        )
    for url in urls:
        scheme = urlsplit(url).scheme
        if scheme not in URL_SCHEMES:
            raise ImproperlyConfigured(
                f"CACHES LOCATION {redact(url)!r} must start with redis://, rediss:// or unix://"
            )
    return urls


def _number(options: dict[str, Any], name: str, setting: str, minimum: float = 0) -> float:
    raw = options.get(name, conf.read(setting))
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < minimum:
        raise ImproperlyConfigured(
            f"CACHES OPTIONS {name} (or {setting}) must be a number >= {minimum}, got {raw!r}"
        )
    return float(raw)


def _duration(options: dict[str, Any], name: str, setting: str) -> float:
    """An OPTIONS duration (``"500ms"``, ``"2s"``, seconds), else the package setting."""
    if name not in options:
        return float(conf.read(setting))
    return conf.duration(f"CACHES OPTIONS {name}", options[name], limit_of=setting)


@dataclass(frozen=True)
class LocalTierOptions:
    """``OPTIONS["LOCAL_TIER"]``: the in-process read tier (see ``local_tier``)."""

    max_entries: int = 10_000
    # Seconds after a write returns by which no process serves the old value any more.
    max_staleness: float = 1.0
    # Values larger than this (bytes, as stored) are not kept locally.
    max_value_size: int = 64 * 1024
    # User-key prefixes kept and tracked; () = every key of the alias.
    key_prefixes: tuple[str, ...] = ()
    # Longest a local copy lives (seconds), whatever the key's TTL; None = the key's TTL.
    ttl: float | None = None


_TIER_KEYS = {"MAX_ENTRIES", "MAX_STALENESS", "MAX_VALUE_SIZE", "KEY_PREFIXES", "TTL"}


def _local_tier(value: Any) -> LocalTierOptions | None:
    if value is None or value is False:
        return None
    if value is True:
        return LocalTierOptions()
    if not isinstance(value, dict):
        raise ImproperlyConfigured(
            'CACHES OPTIONS LOCAL_TIER must be True or a dict such as {"MAX_ENTRIES": 10000}'
        )
    unknown = sorted(set(value) - _TIER_KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"CACHES OPTIONS LOCAL_TIER has unknown keys {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_TIER_KEYS))})"
        )

    def number(name: str, default: float, minimum: float) -> float:
        raw = value.get(name, default)
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < minimum:
            raise ImproperlyConfigured(
                f"CACHES OPTIONS LOCAL_TIER {name} must be a number >= {minimum}, got {raw!r}"
            )
        return float(raw)

    defaults = LocalTierOptions()
    prefixes = value.get("KEY_PREFIXES", ())
    if isinstance(prefixes, str) or not all(isinstance(p, str) and p for p in prefixes):
        raise ImproperlyConfigured(
            "CACHES OPTIONS LOCAL_TIER KEY_PREFIXES must be a list of non-empty key prefixes"
        )
    ttl = value.get("TTL")
    return LocalTierOptions(
        max_entries=int(number("MAX_ENTRIES", defaults.max_entries, 1)),
        max_staleness=number("MAX_STALENESS", defaults.max_staleness, 0.01),
        max_value_size=int(number("MAX_VALUE_SIZE", defaults.max_value_size, 1)),
        key_prefixes=tuple(prefixes),
        ttl=None if ttl is None else number("TTL", 0, 0.001),
    )


@dataclass(frozen=True)
class BackendOptions:
    """Everything a backend instance needs, resolved from its ``CACHES`` entry."""

    urls: list[str]
    mode: str
    serializer: str = "pickle"
    compressor: str | None = None
    compress_min_length: int = DEFAULT_COMPRESS_MIN_LENGTH
    connect_timeout: float = 1.0
    command_timeout: float = 1.0
    retry_attempts: int = 2
    retry_delay: float = 0.05
    max_key_length: int = 250
    key_separator: str = ":"
    strict: bool = False
    stats_flush_interval: float = 5.0
    circuit_failures: int = 5
    circuit_cooldown: float = 5.0
    local_fallback: bool = False
    local_fallback_size: int = 1000
    local_tier: LocalTierOptions | None = None
    # Index every write under its root so invalidate_prefix costs what it deletes; off,
    # invalidate_prefix scans the keyspace instead (never less than it says).
    track_writes: bool = True
    # Deprecated, accepted and unused: every prefix is tracked at any depth.
    prefix_depth: int = 4
    invalidation_prefixes: tuple[str, ...] | str = ()
    max_connections: int | None = None
    sentinels: list[tuple[str, int]] = field(default_factory=list)
    sentinel_kwargs: dict[str, Any] = field(default_factory=dict)
    username: str | None = None
    password: str | None = None
    # HMAC keys derived from OPTIONS SIGNING_KEY / SIGNED (see ``signing``); () = unsigned.
    signing_keys: tuple[bytes, ...] = field(default=(), repr=False)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def safe_location(self) -> str:
        """Connection URLs without credentials, for logs, pages and stats."""
        return ",".join(redact(u) for u in self.urls)


def _roots(value: Any) -> tuple[str, ...] | str:
    if value == "*":
        return "*"
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ImproperlyConfigured(
            'CACHES OPTIONS INVALIDATION_PREFIXES must be a list of prefixes or "*"'
        )
    return tuple(value)


def _flag(options: dict[str, Any], name: str, default: bool) -> bool:
    value = options.get(name, default)
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"CACHES OPTIONS {name} must be True or False, got {value!r}")
    return value


def _mode(options: dict[str, Any]) -> str:
    mode = options.get("MODE")
    if mode is None:
        if options.get("CLUSTER") or conf.read_bool_env("REDIS_CLUSTER_ENABLED"):
            return "cluster"
        return "sentinel" if options.get("SENTINELS") else "single"
    if mode not in MODES:
        raise ImproperlyConfigured(
            f"CACHES OPTIONS MODE must be one of {', '.join(MODES)}, got {mode!r}"
        )
    return str(mode)


def resolve(location: Any, options: dict[str, Any]) -> BackendOptions:
    """Validate and resolve one ``CACHES`` entry; raises ``ImproperlyConfigured``."""
    if not isinstance(options, dict):
        raise ImproperlyConfigured("CACHES OPTIONS must be a dict")
    urls = split_location(location or "")
    mode = _mode(options)
    sentinels = [(str(h), int(p)) for h, p in options.get("SENTINELS") or []]
    if mode == "sentinel" and not sentinels:
        raise ImproperlyConfigured(
            "CACHES OPTIONS SENTINELS must list (host, port) pairs in sentinel mode"
        )
    compressor = options.get("COMPRESSOR")
    if compressor is None and options.get("COMPRESS", conf.read("CACHE_COMPRESSION_ENABLED")):
        compressor = "zlib"
    max_key_length = int(_number(options, "MAX_KEY_LENGTH", "MAX_CACHE_KEY_LENGTH", 64))
    separator = options.get("KEY_SEPARATOR", conf.read("CACHE_KEY_SEPARATOR"))
    if not isinstance(separator, str) or not separator:
        raise ImproperlyConfigured("CACHE_KEY_SEPARATOR must be a non-empty string")
    max_connections = options.get("MAX_CONNECTIONS")
    if max_connections is not None and (
        not isinstance(max_connections, int) or max_connections < 1
    ):
        raise ImproperlyConfigured("CACHES OPTIONS MAX_CONNECTIONS must be a positive integer")
    serializer = options.get("SERIALIZER", "pickle")
    if not isinstance(serializer, str):
        raise ImproperlyConfigured("CACHES OPTIONS SERIALIZER must be a name or a dotted path")
    return BackendOptions(
        urls=urls,
        mode=mode,
        serializer=serializer,
        compressor=compressor,
        compress_min_length=int(options.get("COMPRESS_MIN_LENGTH", DEFAULT_COMPRESS_MIN_LENGTH)),
        connect_timeout=_duration(options, "SOCKET_CONNECT_TIMEOUT", "REDIS_CONNECT_TIMEOUT"),
        command_timeout=_duration(options, "SOCKET_TIMEOUT", "REDIS_COMMAND_TIMEOUT"),
        retry_attempts=int(_number(options, "RETRY_ATTEMPTS", "REDIS_RETRY_ATTEMPTS")),
        retry_delay=_duration(options, "RETRY_DELAY", "REDIS_RETRY_DELAY"),
        max_key_length=max_key_length,
        key_separator=separator,
        strict=bool(options.get("STRICT", False)),
        stats_flush_interval=_number(options, "STATS_FLUSH_INTERVAL", "CACHE_STATS_FLUSH_INTERVAL"),
        circuit_failures=int(_number(options, "CIRCUIT_FAILURES", "CACHE_CIRCUIT_FAILURES", 1)),
        circuit_cooldown=_number(options, "CIRCUIT_COOLDOWN", "CACHE_CIRCUIT_COOLDOWN"),
        local_fallback=bool(options.get("LOCAL_FALLBACK", False)),
        local_fallback_size=int(
            _number(options, "LOCAL_FALLBACK_SIZE", "CACHE_LOCAL_FALLBACK_SIZE", 1)
        ),
        local_tier=_local_tier(options.get("LOCAL_TIER")),
        track_writes=_flag(options, "TRACK_WRITES", True),
        prefix_depth=int(_number(options, "PREFIX_DEPTH", "CACHE_PREFIX_DEPTH")),
        invalidation_prefixes=_roots(options.get("INVALIDATION_PREFIXES", ())),
        max_connections=max_connections,
        sentinels=sentinels,
        sentinel_kwargs=dict(options.get("SENTINEL_KWARGS") or {}),
        username=options.get("USERNAME"),
        password=options.get("PASSWORD"),
        signing_keys=signing.keys_from_options(options),
        raw=options,
    )
