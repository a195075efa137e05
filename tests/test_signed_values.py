"""Signed values (``OPTIONS["SIGNED"]`` / ``OPTIONS["SIGNING_KEY"]``) on a real redis-server.

A pickle planted in Redis whose ``__reduce__`` creates a file is read through every
path (get, get_many, aget, aget_many, the local tier, a domain manager): with signing
on it is a miss, counted and logged as corrupt, and the file never exists; with it
off the same bytes do create the file, so the planted value is a real exploit.
Keys rotate: a value signed with an old key verifies while that key is listed.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.checks import Error
from django_redis.serializers.pickle import PickleSerializer

from django_creator_cache.backend import signing
from django_creator_cache.backend.codec import Codec
from django_creator_cache.checks import check_caches
from django_creator_cache.managers.feature_flags import FeatureFlagManager
from tests.conftest import single_entry
from tests.redis_servers import RedisServer

OLD = "old-signing-key-" + "o" * 32
NEW = "new-signing-key-" + "n" * 32


class Touch:
    """Unpickling this creates ``path``: what an attacker's pickle would do, harmlessly."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        return open, (self.path, "w")


def configure(settings: Any, server: RedisServer, **options: Any) -> Any:
    settings.CACHES = {"default": single_entry(server, **options)}
    cache = caches["default"]
    return cache


@pytest.fixture
def flushed(redis_server: RedisServer) -> Iterator[RedisServer]:
    redis_server.client().flushall()
    yield redis_server
    redis_server.client().flushall()


def plant(server: RedisServer, cache: Any, key: str, raw: bytes) -> None:
    server.client().set(cache.make_key(key), raw)


def _get(cache: Any) -> Any:
    return cache.get("planted", "default")


def _get_many(cache: Any) -> Any:
    return cache.get_many(["planted"]).get("planted", "default")


def _aget(cache: Any) -> Any:
    return asyncio.run(cache.aget("planted", "default"))


def _aget_many(cache: Any) -> Any:
    return asyncio.run(cache.aget_many(["planted"])).get("planted", "default")


READERS = {"get": _get, "get_many": _get_many, "aget": _aget, "aget_many": _aget_many}


@pytest.mark.parametrize("local_tier", [False, True], ids=["redis", "local-tier"])
@pytest.mark.parametrize("read", READERS)
def test_a_planted_pickle_is_a_miss_and_never_runs(
    settings: Any,
    flushed: RedisServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    read: str,
    local_tier: bool,
) -> None:
    options: dict[str, Any] = {"SIGNING_KEY": NEW}
    if local_tier:
        options["LOCAL_TIER"] = {"MAX_STALENESS": 1.0}
    cache = configure(settings, flushed, **options)
    if local_tier:
        assert cache.local_tier.wait_serving(2)
    marker = tmp_path / "pwned"
    plant(flushed, cache, "planted", pickle.dumps(Touch(str(marker))))
    corrupt = cache.runtime.counters.corrupt  # counters are per alias and process
    with caplog.at_level(logging.WARNING, logger="django_creator_cache"):
        assert READERS[read](cache) == "default"
    assert not marker.exists()
    assert cache.runtime.counters.corrupt == corrupt + 1
    assert "unsigned value refused" in caplog.text
    assert NEW not in caplog.text
    assert flushed.client().exists(cache.make_key("planted")) == 0  # dropped
    cache.set("planted", {"ok": True})  # and the cache goes on working
    assert READERS[read](cache) == {"ok": True}


def test_without_signing_the_same_pickle_runs(
    settings: Any, flushed: RedisServer, tmp_path: Path
) -> None:
    """The control: the planted value is a working exploit on an unsigned cache."""
    cache = configure(settings, flushed)
    marker = tmp_path / "pwned"
    plant(flushed, cache, "planted", pickle.dumps(Touch(str(marker))))
    cache.get("planted")
    assert marker.exists()


def test_a_tampered_or_resigned_value_is_a_miss(settings: Any, flushed: RedisServer) -> None:
    cache = configure(settings, flushed, SIGNING_KEY=NEW)
    corrupt = cache.runtime.counters.corrupt
    cache.set("k", "campaign")
    full = cache.make_key("k")
    raw = flushed.client().get(full)
    assert raw.startswith(signing.MAGIC)
    flushed.client().set(full, raw[:-1] + bytes([raw[-1] ^ 1]))
    assert cache.get("k") is None
    forged = signing.Signer([signing.derive("attacker-key-" + "a" * 32)]).sign(raw[19:])
    flushed.client().set(full, forged)
    assert cache.get("k") is None
    assert cache.runtime.counters.corrupt == corrupt + 2


def test_every_path_reads_what_it_signed(settings: Any, flushed: RedisServer) -> None:
    cache = configure(settings, flushed, SIGNED=True, SERIALIZER="json", COMPRESSOR="zlib")
    cache.set_many({"a": {"n": 1}, "b": "x" * 2000})
    assert cache.get_many(["a", "b"]) == {"a": {"n": 1}, "b": "x" * 2000}
    assert asyncio.run(cache.aget("a")) == {"n": 1}
    cache.set("n", 5)
    assert cache.incr("n") == 6  # integers stay plain Redis integers
    assert flushed.client().get(cache.make_key("n")) == b"6"
    cache.sadd("s", "m1", "m2")
    assert cache.smembers("s") == {"m1", "m2"}
    flags = FeatureFlagManager()
    flags.set("beta", True)
    assert flags.is_enabled("beta")
    for key in flushed.client().keys("*"):
        if flushed.client().type(key) == b"string" and key != cache.make_key("n").encode():
            assert flushed.client().get(key).startswith(signing.MAGIC), key


def test_rotation(settings: Any, flushed: RedisServer) -> None:
    old = configure(settings, flushed, SIGNING_KEY=OLD)
    old.set("k", "written under the old key")
    rotated = configure(settings, flushed, SIGNING_KEY=[NEW, OLD])
    assert rotated.get("k") == "written under the old key"  # old key still listed
    rotated.set_many({"fresh": "written under the new key", "probe": "new"})
    assert configure(settings, flushed, SIGNING_KEY=OLD).get("probe") is None  # new signs
    retired = configure(settings, flushed, SIGNING_KEY=NEW)
    corrupt = retired.runtime.counters.corrupt
    assert retired.get("fresh") == "written under the new key"
    assert retired.get("k") is None  # old key removed: no longer verifies
    assert retired.runtime.counters.corrupt == corrupt + 1


def test_signed_true_uses_secret_key_and_its_fallbacks(settings: Any, flushed: RedisServer) -> None:
    settings.SECRET_KEY = "first-secret-key-" + "f" * 40
    configure(settings, flushed, SIGNED=True).set("k", "v")
    settings.SECRET_KEY = "second-secret-key-" + "s" * 40
    settings.SECRET_KEY_FALLBACKS = ["first-secret-key-" + "f" * 40]
    assert configure(settings, flushed, SIGNED=True).get("k") == "v"
    settings.SECRET_KEY_FALLBACKS = []
    assert configure(settings, flushed, SIGNED=True).get("k") is None


def test_unsigned_caches_still_write_django_redis_bytes(
    settings: Any, flushed: RedisServer
) -> None:
    cache = configure(settings, flushed)
    value = {"campaign": 7, "name": "Spring"}
    cache.set("k", value)
    assert flushed.client().get(cache.make_key("k")) == PickleSerializer({}).dumps(value)
    codec = Codec(PickleSerializer({}), None)
    assert codec.encode(value) == PickleSerializer({}).dumps(value) and not codec.signed


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"SIGNING_KEY": "short"}, "at least 32 characters"),
        ({"SIGNING_KEY": []}, "non-empty list"),
        ({"SIGNING_KEY": [NEW, 42]}, "key #2"),
        ({"SIGNED": "yes"}, "SIGNED must be True or False"),
        ({"SIGNED": False, "SIGNING_KEY": NEW}, "SIGNED is False"),
    ],
)
def test_a_bad_signing_option_fails_the_check(
    settings: Any, redis_server: RedisServer, options: dict[str, Any], says: str
) -> None:
    settings.CACHES = {"default": single_entry(redis_server, **options)}
    (error,) = check_caches()
    assert isinstance(error, Error) and error.id == "django_creator_cache.E005"
    assert says in error.msg
    given = options.get("SIGNING_KEY")
    for key in [given] if isinstance(given, str) else given or []:
        assert str(key) not in error.msg  # no key is ever shown


def test_good_signing_options_pass_the_check(settings: Any, redis_server: RedisServer) -> None:
    for options in ({"SIGNED": True}, {"SIGNING_KEY": NEW}, {"SIGNING_KEY": (NEW, OLD)}):
        settings.CACHES = {"default": single_entry(redis_server, **options)}
        assert check_caches() == []
