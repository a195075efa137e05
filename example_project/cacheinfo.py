"""Which cache the example project runs on, told without any password.

Shown on the home page and in the banner ``runserver`` prints at start-up, so
nobody mistakes the embedded in-memory default for a real Redis server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from django_creator_cache import embedded
from django_creator_cache.backend.options import redact


@dataclass(frozen=True)
class CacheInfo:
    alias: str
    backend: str
    location: str
    """Every URL of ``LOCATION``, passwords replaced by ``***``."""
    source: str
    """``embedded``, ``REDIS_URL``, ``REDIS_HOST`` or ``settings``."""

    @property
    def embedded(self) -> bool:
        return self.source == "embedded"


def _urls(location: Any) -> list[str]:
    parts = location.split(",") if isinstance(location, str) else list(location or [])
    return [str(p).strip() for p in parts if str(p).strip()]


def describe(alias: str = "default") -> CacheInfo:
    entry = settings.CACHES[alias]
    urls = _urls(entry.get("LOCATION", ""))
    running = embedded.url()
    if running is not None and urls == [running]:
        source = "embedded"
    elif os.environ.get("REDIS_URL"):
        source = "REDIS_URL"
    elif os.environ.get("REDIS_HOST"):
        source = "REDIS_HOST"
    else:
        source = "settings"
    return CacheInfo(
        alias=alias,
        backend=str(entry.get("BACKEND", "")),
        location=",".join(redact(u) for u in urls),
        source=source,
    )


def banner(alias: str = "default") -> str:
    """Two lines for the console: which cache, and what that means."""
    info = describe(alias)
    if info.embedded:
        return (
            f"Cache: embedded in-process fakeredis at {info.location}\n"
            "       (data is lost when the server stops; set REDIS_URL to use a real Redis server)"
        )
    if info.source == "settings":
        return f"Cache: {info.backend} at {info.location or '(no LOCATION)'} (from settings.CACHES)"
    return f"Cache: Redis at {info.location} (from {info.source})"
