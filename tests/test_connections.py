"""get_redis_connection hands out the cache's own client, in every mode."""

from __future__ import annotations

from typing import Any

import pytest

from django_creator_cache.connections import get_redis_connection
from tests.conftest import Target


def test_the_raw_client_is_the_caches_own(target: Target) -> None:
    cache = target.cache
    raw = get_redis_connection("default")
    assert raw is cache.get_client()  # same pool: no second set of connections
    raw.set(cache.make_key("shared"), 41)
    assert cache.incr("shared") == 42  # what raw code writes, the cache reads
    cache.set("from-cache", "v")
    assert raw.get(cache.make_key("from-cache")) is not None


def test_other_backends_are_refused(settings: Any) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with pytest.raises(TypeError, match="not django_creator_cache"):
        get_redis_connection("default")
