"""``cache_response`` with every serializer (and a compressor): MISS, then a HIT
identical to it in status, reason, headers and (binary) body, on a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.test import AsyncClient, Client

from tests.conftest import flush, single_entry
from tests.redis_servers import RedisServer
from tests.testapp import views

SERIALIZERS = [("pickle", None), ("json", None), ("msgpack", None), ("json", "zlib")]


@pytest.fixture(params=SERIALIZERS, ids=lambda p: "-".join(filter(None, p)))
def cache(
    request: pytest.FixtureRequest, settings: Any, redis_server: RedisServer
) -> Iterator[Any]:
    serializer, compressor = request.param
    options: dict[str, Any] = {"SERIALIZER": serializer}
    if compressor:
        options |= {"COMPRESSOR": compressor, "COMPRESS_MIN_LENGTH": 16}
    settings.CACHES = {"default": single_entry(redis_server, **options)}
    backend = caches["default"]
    flush(backend)
    views.RENDERS.clear()
    yield backend
    flush(backend)


def same_page(miss: Any, hit: Any) -> None:
    assert (miss["X-Cache"], hit["X-Cache"]) == ("MISS", "HIT")
    assert hit.status_code == miss.status_code == 203
    assert hit.reason_phrase == miss.reason_phrase == "Partly Yours"
    assert hit.content == miss.content == views.BINARY_BODY
    for name in ("Content-Type", "X-Menu"):
        assert hit[name] == miss[name]
    assert hit["X-Menu"] == "café crème"


def test_sync_view_hits_with_every_serializer(cache: Any) -> None:
    client = Client()
    same_page(client.get("/binary/"), client.get("/binary/"))
    assert views.RENDERS["binary"] == 1


def test_async_view_hits_with_every_serializer(cache: Any) -> None:
    async def scenario() -> tuple[Any, Any]:
        client = AsyncClient()
        return await client.get("/async-binary/"), await client.get("/async-binary/")

    same_page(*asyncio.run(scenario()))
    assert views.RENDERS["binary"] == 1


def test_a_page_is_stored_as_bytes_or_as_text_as_the_serializer_needs(cache: Any) -> None:
    Client().get("/binary/")
    (key,) = cache.keys("views:binary:*")
    stored = cache.get(key)
    text = cache.options.serializer == "json"
    assert type(stored) is (str if text else bytes)
    raw = cache.get_client().get(cache.make_key(key))
    if cache.options.compressor is None:
        assert (b'"dcc-page:' if text else b"DCCP") in raw
