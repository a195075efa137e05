"""Receivers that keep cached configuration true to the current settings."""

from __future__ import annotations

from typing import Any

from django.core.cache import caches
from django.core.signals import setting_changed

from . import conf

# Attributes a backend derives from settings on first use.
_DERIVED = (
    "options",
    "key_separator",
    "_max_key_length",
    "_codec",
    "_redis",
    "_mode",
    "_incr_script",
    "_key_head",
    "_breaker",
    "_fallback",
    "_prefix_depth",
    "_index_head",
    "_take_script",
    "_tracked_roots",
)


def reset_backends(*, setting: str, **kwargs: Any) -> None:
    """``override_settings`` of one of our settings: re-read it on next use."""
    if not conf.is_ours(setting) or setting == "CACHES":
        return
    from .backend.cache import RedisCache

    for backend in caches.all(initialized_only=True):
        if isinstance(backend, RedisCache):
            for name in _DERIVED:
                backend.__dict__.pop(name, None)


def connect() -> None:
    setting_changed.connect(reset_backends, dispatch_uid="django_creator_cache.reset_backends")
