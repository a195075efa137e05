"""Receivers that keep cached configuration true to the current settings."""

from __future__ import annotations

from typing import Any

from django.core.cache import caches
from django.core.signals import setting_changed

from . import conf


def reset_backends(*, setting: str, **kwargs: Any) -> None:
    """``override_settings`` of one of our settings: re-read it on next use."""
    if not conf.is_ours(setting) or setting == "CACHES":
        return
    from .backend.cache import RedisCache

    for backend in caches.all(initialized_only=True):
        if isinstance(backend, RedisCache):
            backend.reset()


def connect() -> None:
    setting_changed.connect(reset_backends, dispatch_uid="django_creator_cache.reset_backends")
