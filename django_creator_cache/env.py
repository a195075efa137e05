"""Build a ``CACHES`` entry from the environment (twelve-factor style).

``REDIS_URL`` (redis://, rediss://, unix://) or ``REDIS_HOST``, ``REDIS_PORT``,
``REDIS_PASSWORD``, ``REDIS_DB``; ``REDIS_CLUSTER_ENABLED``;
``REDIS_KEY_PREFIX`` or ``CACHE_KEY_PREFIX``; timeouts, retries and
compression come from the package settings of the same names.

The password never goes into ``LOCATION``: Django's debug page and
``diffsettings`` print ``LOCATION`` but hide settings whose name contains
``PASSWORD``, so it travels as ``OPTIONS["PASSWORD"]`` (a password written in
``REDIS_URL`` is moved there too), as a ``Secret``: a ``str`` whose ``repr``
hides it, so even ``diffsettings`` and ``repr(settings.CACHES)`` do not show it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from typing import Any

from .redis_urls import url_password, without_password

BACKEND = "django_creator_cache.backend.RedisCache"
_TRUE = {"1", "true", "yes", "on"}
# Per-process key of the fingerprint in ``Secret``'s repr: equal passwords look equal
# within a process (configurations still compare), nothing can be guessed from it.
_FINGERPRINT_KEY = secrets.token_bytes(32)


class Secret(str):
    """A password: the string itself everywhere, ``'<secret ...>'`` in its ``repr``.

    Settings dumps (``diffsettings``, ``repr``) print values with ``repr``; the
    fingerprint is an HMAC under a random per-process key, so two different
    passwords never look alike and neither can be recovered from it.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        digest = hmac.new(_FINGERPRINT_KEY, self.encode(), hashlib.sha256).hexdigest()
        return f"'<secret {digest[:12]}>'"


def redis_url_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """``REDIS_URL``, else one built from ``REDIS_HOST`` and friends, else None.

    The URL built from ``REDIS_HOST`` carries no password (see ``cache_from_env``).
    """
    env = os.environ if environ is None else environ
    if env.get("REDIS_URL"):
        return env["REDIS_URL"]
    host = env.get("REDIS_HOST")
    if not host:
        return None
    return f"redis://{host}:{env.get('REDIS_PORT', '6379')}/{env.get('REDIS_DB', '0')}"


def cache_from_env(
    environ: Mapping[str, str] | None = None, *, default_url: str = "redis://127.0.0.1:6379/0"
) -> dict[str, Any]:
    """A ``CACHES`` entry for this backend from the environment.

    Usage: ``CACHES = {"default": cache_from_env()}``. The password (from
    ``REDIS_URL`` or ``REDIS_PASSWORD``) is in ``OPTIONS["PASSWORD"]``, never
    in ``LOCATION``.
    """
    env = os.environ if environ is None else environ
    given = redis_url_from_env(env) or default_url
    url, password = without_password(given), url_password(given)
    password = password or env.get("REDIS_PASSWORD") or None
    options: dict[str, Any] = {}
    if password:
        options["PASSWORD"] = Secret(password)
    if env.get("REDIS_CLUSTER_ENABLED", "").strip().lower() in _TRUE:
        options["MODE"] = "cluster"
    entry: dict[str, Any] = {"BACKEND": BACKEND, "LOCATION": url, "OPTIONS": options}
    prefix = env.get("REDIS_KEY_PREFIX") or env.get("CACHE_KEY_PREFIX")
    if prefix:
        entry["KEY_PREFIX"] = prefix
    return entry
