"""Build a ``CACHES`` entry from the environment (twelve-factor style).

``REDIS_URL`` (redis://, rediss://, unix://) or ``REDIS_HOST``, ``REDIS_PORT``,
``REDIS_PASSWORD``, ``REDIS_DB``; ``REDIS_CLUSTER_ENABLED``;
``REDIS_KEY_PREFIX`` or ``CACHE_KEY_PREFIX``; timeouts, retries and
compression come from the package settings of the same names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

BACKEND = "django_creator_cache.backend.RedisCache"
_TRUE = {"1", "true", "yes", "on"}


def redis_url_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """``REDIS_URL``, else one built from ``REDIS_HOST`` and friends, else None."""
    env = os.environ if environ is None else environ
    if env.get("REDIS_URL"):
        return env["REDIS_URL"]
    host = env.get("REDIS_HOST")
    if not host:
        return None
    password = env.get("REDIS_PASSWORD")
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{env.get('REDIS_PORT', '6379')}/{env.get('REDIS_DB', '0')}"


def cache_from_env(
    environ: Mapping[str, str] | None = None, *, default_url: str = "redis://127.0.0.1:6379/0"
) -> dict[str, Any]:
    """A ``CACHES`` entry for this backend from the environment.

    Usage: ``CACHES = {"default": cache_from_env()}``.
    """
    env = os.environ if environ is None else environ
    url = redis_url_from_env(env) or default_url
    options: dict[str, Any] = {}
    if env.get("REDIS_CLUSTER_ENABLED", "").strip().lower() in _TRUE:
        options["MODE"] = "cluster"
    entry: dict[str, Any] = {"BACKEND": BACKEND, "LOCATION": url, "OPTIONS": options}
    prefix = env.get("REDIS_KEY_PREFIX") or env.get("CACHE_KEY_PREFIX")
    if prefix:
        entry["KEY_PREFIX"] = prefix
    return entry
