"""System checks: bad configuration fails at start-up, naming the setting.

IDs: ``django_creator_cache.E001`` invalid ``CACHES`` entry (URL, mode,
options), ``E002`` unknown serializer, ``E003`` unknown compressor, ``E004``
invalid package setting (negative TTL, bad number), ``E005`` bad ``SIGNED`` /
``SIGNING_KEY`` option, ``E006`` a duration setting (``REDIS_CONNECT_TIMEOUT``,
``REDIS_COMMAND_TIMEOUT``, ``REDIS_RETRY_DELAY``, ``CACHE_HEALTH_TIMEOUT``,
``CACHE_HEALTH_INTERVAL`` or the OPTIONS ``SOCKET_CONNECT_TIMEOUT``, ``SOCKET_TIMEOUT``,
``RETRY_DELAY``) given as a bare number that is implausible in seconds
(``conf.DURATION_LIMITS``), ``W001`` unknown OPTIONS key.
Rate limiting: ``E020`` ``RATELIMIT_TRUSTED_PROXIES``, ``E021`` ``RATELIMIT_IPV4_PREFIX`` /
``RATELIMIT_IPV6_PREFIX``, ``E022`` ``RATELIMIT_VIEW``, ``E023`` ``RATELIMIT_CACHE``
(see ``ratelimit.config``).
Single flight: ``E030`` ``CACHE_LOCK_TIMEOUT`` / ``CACHE_LOCK_WAIT`` of zero.
Admin page: ``E040`` ``CACHE_STATS_HISTORY_SIZE`` below 2 (a chart needs two samples).
Metrics: ``E050`` ``CACHE_METRICS`` on without prometheus_client installed.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from . import conf
from .backend.codec import COMPRESSORS, SERIALIZERS, resolve_path
from .backend.options import KNOWN_OPTIONS, resolve
from .backend.signing import keys_from_options
from .ratelimit import config as ratelimit_config

_UNIT_HINT = "Give the unit: '500ms', '2s' (a bare number is seconds)."

BACKEND_PATHS = (
    "django_creator_cache.backend.RedisCache",
    "django_creator_cache.backend.cache.RedisCache",
)


def _importable(path: str) -> bool:
    try:
        import_string(path)
    except ImportError:
        return False
    return True


def check_caches(**kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for alias, entry in getattr(settings, "CACHES", {}).items():
        if entry.get("BACKEND") not in BACKEND_PATHS:
            continue
        where = f"CACHES[{alias!r}]"
        raw_options = entry.get("OPTIONS") or {}
        try:
            keys_from_options(raw_options if isinstance(raw_options, dict) else {})
        except ImproperlyConfigured as exc:
            errors.append(checks.Error(f"{where}: {exc}", id="django_creator_cache.E005"))
            continue
        try:
            options = resolve(entry.get("LOCATION", ""), entry.get("OPTIONS") or {})
        except conf.ImplausibleDuration as exc:
            errors.append(
                checks.Error(f"{where}: {exc}", hint=_UNIT_HINT, id="django_creator_cache.E006")
            )
            continue
        except (ImproperlyConfigured, TypeError, ValueError) as exc:
            errors.append(checks.Error(f"{where}: {exc}", id="django_creator_cache.E001"))
            continue
        unknown = sorted(set(options.raw) - KNOWN_OPTIONS)
        if unknown:
            errors.append(
                checks.Warning(
                    f"{where} OPTIONS {', '.join(unknown)} not used by this backend",
                    hint="Check the spelling; django-redis's CLIENT_CLASS has no meaning here.",
                    id="django_creator_cache.W001",
                )
            )
        if not _importable(resolve_path(options.serializer, SERIALIZERS)):
            errors.append(
                checks.Error(
                    f"{where} OPTIONS SERIALIZER {options.serializer!r} cannot be imported",
                    hint=f"Use one of {', '.join(SERIALIZERS)} or a dotted path.",
                    id="django_creator_cache.E002",
                )
            )
        if options.compressor and not _importable(resolve_path(options.compressor, COMPRESSORS)):
            errors.append(
                checks.Error(
                    f"{where} OPTIONS COMPRESSOR {options.compressor!r} cannot be imported",
                    hint=f"Use one of {', '.join(COMPRESSORS)} or a dotted path.",
                    id="django_creator_cache.E003",
                )
            )
        timeout = entry.get("TIMEOUT", 0)
        if timeout is not None and (not isinstance(timeout, int | float) or timeout < 0):
            errors.append(
                checks.Error(
                    f"{where} TIMEOUT must be None or >= 0", id="django_creator_cache.E001"
                )
            )
    return errors


def check_settings(**kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for name in conf.ttl_policy_settings():
        if name not in conf.DEFAULTS:  # a policy of the project's own: CACHE_TTL_<NAME>
            try:
                conf.ttl_policy(name.removeprefix(conf.TTL_PREFIX).lower())
            except ImproperlyConfigured as exc:
                errors.append(checks.Error(str(exc), id="django_creator_cache.E004"))
    for name, default in conf.DEFAULTS.items():
        try:
            value = conf.read(name)
        except conf.ImplausibleDuration as exc:
            errors.append(checks.Error(str(exc), hint=_UNIT_HINT, id="django_creator_cache.E006"))
            continue
        except ImproperlyConfigured as exc:
            errors.append(checks.Error(str(exc), id="django_creator_cache.E004"))
            continue
        if isinstance(default, int | float) and not isinstance(default, bool) and value < 0:
            errors.append(
                checks.Error(
                    f"{name} must not be negative, got {value!r}", id="django_creator_cache.E004"
                )
            )
    if not errors and conf.read("MAX_CACHE_KEY_LENGTH") < 64:
        errors.append(
            checks.Error(
                "MAX_CACHE_KEY_LENGTH must be at least 64 (room for a prefix and a hash)",
                id="django_creator_cache.E004",
            )
        )
    return errors


def check_single_flight(**kwargs: Any) -> list[checks.CheckMessage]:
    """A lock that expires at once, or a wait of nothing, would break every cache miss."""
    errors: list[checks.CheckMessage] = []
    for name in ("CACHE_LOCK_TIMEOUT", "CACHE_LOCK_WAIT"):
        try:
            value = conf.read(name)
        except ImproperlyConfigured:
            continue  # reported as E004
        if value == 0:
            errors.append(
                checks.Error(
                    f"{name} must be greater than 0 (seconds)", id="django_creator_cache.E030"
                )
            )
    return errors


def check_history(**kwargs: Any) -> list[checks.CheckMessage]:
    """The chart's capped list: ``LTRIM`` to fewer than two samples would chart nothing."""
    try:
        size = conf.read("CACHE_STATS_HISTORY_SIZE")
    except ImproperlyConfigured:
        return []  # reported as E004
    if size < 2:
        return [
            checks.Error(
                f"CACHE_STATS_HISTORY_SIZE must be at least 2 (samples kept per alias), got {size}",
                id="django_creator_cache.E040",
            )
        ]
    return []


def check_metrics(**kwargs: Any) -> list[checks.CheckMessage]:
    """Metrics on without prometheus_client would fail the first cache call instead."""
    try:
        wanted = conf.read("CACHE_METRICS")
    except ImproperlyConfigured:
        return []  # reported as E004
    if wanted and not _importable("prometheus_client.REGISTRY"):
        return [
            checks.Error(
                "CACHE_METRICS is on but prometheus_client is not installed",
                hint="pip install 'django-creator-cache[prometheus]', or turn CACHE_METRICS off.",
                id="django_creator_cache.E050",
            )
        ]
    return []


def register() -> None:
    checks.register(check_caches, checks.Tags.caches)
    checks.register(check_settings, checks.Tags.caches)
    checks.register(check_single_flight, checks.Tags.caches)
    checks.register(check_history, checks.Tags.caches)
    checks.register(check_metrics, checks.Tags.caches)
    checks.register(ratelimit_config.check_settings, checks.Tags.caches)
