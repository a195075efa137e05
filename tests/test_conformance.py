"""The Django cache API and the django-redis extras, on single Redis, Sentinel and Cluster.

Every test here that takes ``cache`` or ``target`` runs three times, once per mode,
against real servers (see ``conftest.py``). Tests that need a special configuration
build an extra alias on the same servers with ``make_cache``.
"""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import msgpack
import pytest
from django.contrib.auth.models import User
from django.core.cache import caches
from redis.crc import key_slot

from django_creator_cache.exceptions import SerializationError
from tests.conftest import Target, cluster_entry, flush, sentinel_entry, single_entry
from tests.redis_servers import RedisCluster, RedisServer

SERVERS = {"single": "redis_server", "sentinel": "redis_sentinel", "cluster": "redis_cluster"}
ENTRIES = {"single": single_entry, "sentinel": sentinel_entry, "cluster": cluster_entry}

UNICODE_KEYS = [
    "café ☕",
    "🎉🚀 party",
    "日本語のキー",
    "한국어 키",
    "key with  spaces ",
    "tab\tnew\nline\rnul\x00esc\x1b",
    "Ω≈ç√∫",
]


@dataclass
class Campaign:
    """A model-like value: a plain object with fields, pickled by value."""

    id: int
    title: str
    budget: Decimal
    starts: datetime
    tags: list[str]


def custom_key(key: str, key_prefix: str, version: int) -> str:
    """A ``KEY_FUNCTION`` with its own layout."""
    return f"custom/{key_prefix}/v{version}/{key}"


@pytest.fixture
def make_cache(target: Target, settings: Any, request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Build another alias on the servers of the current mode.

    ``make_cache("alias", KEY_PREFIX="p", options={"SERIALIZER": "json"})``.
    """
    servers = request.getfixturevalue(SERVERS[target.mode])
    entry_for = ENTRIES[target.mode]

    def make(alias: str = "custom", *, options: dict[str, Any] | None = None, **params: Any) -> Any:
        entry = entry_for(servers, **(options or {}))
        entry.update(params)
        settings.CACHES = {**settings.CACHES, alias: entry}
        return caches[alias]

    return make


def raw_client(cache: Any) -> Any:
    """The redis-py client behind ``cache``, to look at what is really stored."""
    return cache.get_client()


# -- get / set / add -----------------------------------------------------------


def test_set_and_get(cache: Any) -> None:
    assert cache.get("missing") is None
    assert cache.get("missing", "fallback") == "fallback"
    assert cache.set("k", "v") is True
    assert cache.get("k") == "v"
    assert cache.set("k", "w") is True
    assert cache.get("k") == "w"


def test_set_nx_and_xx(cache: Any) -> None:
    assert cache.set("k", 1, xx=True) is False
    assert cache.has_key("k") is False
    assert cache.set("k", 1, nx=True) is True
    assert cache.set("k", 2, nx=True) is False
    assert cache.get("k") == 1
    assert cache.set("k", 3, xx=True) is True
    assert cache.get("k") == 3


def test_add(cache: Any) -> None:
    assert cache.add("k", "first") is True
    assert cache.add("k", "second") is False
    assert cache.get("k") == "first"
    # add with timeout 0 writes nothing, and reports whether the key was free
    assert cache.add("zero", "x", timeout=0) is True
    assert cache.has_key("zero") is False
    assert cache.add("k", "x", timeout=0) is False
    assert cache.get("k") == "first"


def test_timeout_none_never_expires(cache: Any) -> None:
    cache.set("forever", "v", timeout=None)
    assert cache.ttl("forever") is None
    assert cache.pttl("forever") is None
    assert raw_client(cache).pttl(cache.make_key("forever")) == -1


@pytest.mark.parametrize("timeout", [0, -1, -3600])
def test_timeout_zero_or_negative_deletes(cache: Any, timeout: int) -> None:
    cache.set("k", "v")
    cache.set_many({"a": 1, "b": 2})
    assert cache.set("k", "new", timeout=timeout) is True
    assert cache.get("k") is None
    assert cache.has_key("k") is False
    assert cache.set_many({"a": 3, "b": 4}, timeout=timeout) == []
    assert cache.get_many(["a", "b"]) == {}


def test_float_timeout(cache: Any) -> None:
    cache.set("short", "v", timeout=0.15)
    assert 0 < cache.pttl("short") <= 150
    cache.set("long", "v", timeout=12.5)
    assert 12_000 < cache.pttl("long") <= 12_500
    time.sleep(0.25)
    assert cache.get("short") is None
    assert cache.get("long") == "v"


def test_default_timeout_is_TIMEOUT(cache: Any, make_cache: Callable[..., Any]) -> None:
    # No TIMEOUT in CACHES: the "default" TTL policy (CACHE_TTL_DEFAULT, 3600 s).
    cache.set("k", "v")
    assert 3590 <= cache.ttl("k") <= 3600
    custom = make_cache("custom", TIMEOUT=123)
    custom.set("k2", "v")
    assert 118 <= custom.ttl("k2") <= 123
    custom.set_many({"k3": 1})
    assert 118 <= custom.ttl("k3") <= 123
    custom.touch("k3")
    assert 118 <= custom.ttl("k3") <= 123
    never = make_cache("never", TIMEOUT=None, KEY_PREFIX="never")
    never.set("k", "v")
    assert never.ttl("k") is None


# -- touch / delete / has_key ----------------------------------------------------


def test_touch(cache: Any) -> None:
    assert cache.touch("missing", 10) is False
    cache.set("k", "v", timeout=1000)
    assert cache.touch("k", 10) is True
    assert 8 <= cache.ttl("k") <= 10
    assert cache.touch("k", None) is True
    assert cache.ttl("k") is None
    assert cache.touch("k", 0.2) is True
    assert cache.pttl("k") <= 200
    assert cache.get("k") == "v"


def test_delete(cache: Any) -> None:
    cache.set("k", "v")
    assert cache.delete("k") is True
    assert cache.get("k") is None
    assert cache.delete("k") is False


def test_has_key_and_contains(cache: Any) -> None:
    assert cache.has_key("k") is False
    assert "k" not in cache
    cache.set("k", None)
    assert cache.has_key("k") is True
    assert "k" in cache
    assert cache.has_key("k", version=2) is False


# -- many ------------------------------------------------------------------------


def test_set_many_and_get_many(cache: Any) -> None:
    data = {f"k{i}": {"n": i} for i in range(20)}
    data["int"] = 7
    data["none"] = None
    assert cache.set_many(data) == []
    assert cache.get_many([*data, "missing1", "missing2"]) == data
    assert cache.get_many([]) == {}
    assert cache.set_many({}) == []
    assert cache.get("k3") == {"n": 3}
    assert 3590 <= cache.ttl("k3") <= 3600
    cache.set_many({"t": 1}, timeout=None)
    assert cache.ttl("t") is None


def test_delete_many(cache: Any) -> None:
    cache.set_many({"a": 1, "b": 2, "c": 3, "d": 4})
    cache.delete_many(["a", "b", "never-existed"])
    assert cache.get_many(["a", "b", "c", "d"]) == {"c": 3, "d": 4}
    cache.delete_many([])
    assert cache.get_many(["c", "d"]) == {"c": 3, "d": 4}


# -- incr / decr -------------------------------------------------------------------


def test_incr_and_decr(cache: Any) -> None:
    cache.set("n", 10)
    assert cache.incr("n") == 11
    assert cache.incr("n", 5) == 16
    assert cache.decr("n") == 15
    assert cache.decr("n", 20) == -5
    assert cache.get("n") == -5
    assert cache.incr("n", -1) == -6


def test_ints_are_stored_raw_so_redis_incr_works(cache: Any) -> None:
    cache.set("n", 41)
    full = cache.make_key("n")
    assert raw_client(cache).get(full) == b"41"
    assert raw_client(cache).incr(full) == 42
    assert cache.get("n") == 42


def test_incr_missing_key_raises_value_error(cache: Any) -> None:
    with pytest.raises(ValueError):
        cache.incr("missing")
    with pytest.raises(ValueError):
        cache.decr("missing")
    assert cache.has_key("missing") is False


@pytest.mark.parametrize("value", ["text", 1.5, [1], b"7"])
def test_incr_non_integer_raises_type_error(cache: Any, value: Any) -> None:
    cache.set("v", value)
    with pytest.raises(TypeError):
        cache.incr("v")
    assert cache.get("v") == value


def test_incr_keeps_ttl(cache: Any) -> None:
    cache.set("n", 1, timeout=500)
    cache.incr("n")
    cache.decr("n", 3)
    assert 490 <= cache.ttl("n") <= 500
    cache.set("p", 1, timeout=None)
    cache.incr("p")
    assert cache.ttl("p") is None


def test_incr_after_the_server_lost_its_scripts(cache: Any) -> None:
    """``incr`` sends its script by SHA1; a server without it (restart, SCRIPT FLUSH, a
    new Cluster node) gets the source once, sync and async, and counts it once."""
    cache.set("n", 1)
    raw_client(cache).script_flush()  # on a Cluster: every node
    assert cache.incr("n") == 2
    raw_client(cache).script_flush()
    assert asyncio.run(cache.aincr("n", 3)) == 5
    raw_client(cache).script_flush()
    with pytest.raises(ValueError):
        cache.incr("missing")
    assert cache.get("n") == 5


def test_incr_ignore_key_check(cache: Any) -> None:
    assert cache.incr("fresh", 3, ignore_key_check=True) == 3
    assert cache.get("fresh") == 3
    assert cache.incr("fresh", 2, ignore_key_check=True) == 5


def test_huge_integers(cache: Any) -> None:
    cache.set("big", 2**70, timeout=500)
    assert cache.get("big") == 2**70
    assert cache.incr("big") == 2**70 + 1
    assert cache.decr("big", 2) == 2**70 - 1
    assert cache.get("big") == 2**70 - 1
    assert 490 <= cache.ttl("big") <= 500
    # crossing the 64-bit boundary in either direction
    cache.set("edge", 2**63 - 1)
    assert cache.incr("edge") == 2**63
    assert cache.get("edge") == 2**63
    cache.set("low", -(2**63))
    assert cache.decr("low") == -(2**63) - 1
    assert cache.get_many(["edge", "low"]) == {"edge": 2**63, "low": -(2**63) - 1}


# -- clear ------------------------------------------------------------------------


def test_clear_without_prefix_empties_the_database(cache: Any) -> None:
    cache.set_many({f"k{i}": i for i in range(30)})
    raw_client(cache).set("foreign-key", b"x")
    assert cache.clear() is True
    assert cache.get_many([f"k{i}" for i in range(30)]) == {}
    assert raw_client(cache).exists("foreign-key") == 0


def test_clear_with_prefix_keeps_other_keys(make_cache: Callable[..., Any]) -> None:
    mine = make_cache("mine", KEY_PREFIX="mine")
    theirs = make_cache("theirs", KEY_PREFIX="theirs")
    bare = make_cache("bare")
    keys = [f"k{i}" for i in range(30)]
    for c in (mine, theirs, bare):
        c.set_many({k: k for k in keys})
    raw_client(mine).set("mine-lookalike", b"x")  # no separator after the prefix
    assert mine.clear() is True
    assert mine.get_many(keys) == {}
    assert theirs.get_many(keys) == {k: k for k in keys}
    assert bare.get_many(keys) == {k: k for k in keys}
    assert raw_client(mine).get("mine-lookalike") == b"x"


def test_clear_with_glob_characters_in_prefix(make_cache: Callable[..., Any]) -> None:
    star = make_cache("star", KEY_PREFIX="a*")
    other = make_cache("other", KEY_PREFIX="abc")
    star.set("k", 1)
    other.set("k", 2)
    star.clear()
    assert star.get("k") is None
    assert other.get("k") == 2


# -- get_or_set ----------------------------------------------------------------------


def test_get_or_set(cache: Any) -> None:
    assert cache.get_or_set("k", "computed") == "computed"
    assert cache.get_or_set("k", "other") == "computed"
    calls: list[int] = []

    def compute() -> dict[str, int]:
        calls.append(1)
        return {"x": 1}

    assert cache.get_or_set("c", compute, timeout=100) == {"x": 1}
    assert cache.get_or_set("c", compute) == {"x": 1}
    assert calls == [1]
    assert 95 <= cache.ttl("c") <= 100
    # a cached None is a hit
    cache.set("none", None)
    assert cache.get_or_set("none", "x") is None


# -- versions, prefixes, key functions -------------------------------------------------


def test_versions(cache: Any) -> None:
    cache.set("k", "v1", version=1)
    cache.set("k", "v2", version=2)
    assert cache.get("k") == "v1"
    assert cache.get("k", version=2) == "v2"
    assert cache.get("k", version=3) is None
    assert cache.get_many(["k"], version=2) == {"k": "v2"}
    cache.delete("k", version=2)
    assert cache.get("k", version=2) is None
    assert cache.get("k") == "v1"


def test_incr_version_keeps_value_and_ttl(cache: Any) -> None:
    cache.set("k", {"a": 1}, timeout=500)
    assert cache.incr_version("k") == 2
    assert cache.get("k") is None
    assert cache.get("k", version=2) == {"a": 1}
    assert 490 <= cache.ttl("k", version=2) <= 500
    assert cache.decr_version("k", version=2) == 1
    assert cache.get("k") == {"a": 1}
    assert cache.get("k", version=2) is None
    assert 490 <= cache.ttl("k") <= 500
    cache.set("p", 5, timeout=None)
    assert cache.incr_version("p", delta=3) == 4
    assert cache.get("p", version=4) == 5
    assert cache.ttl("p", version=4) is None
    with pytest.raises(ValueError):
        cache.incr_version("missing")


def test_version_setting(cache: Any, make_cache: Callable[..., Any]) -> None:
    v5 = make_cache("v5", VERSION=5)
    v5.set("k", "five")
    assert raw_client(v5).exists(":5:k") == 1
    assert cache.get("k") is None
    assert cache.get("k", version=5) == "five"


def test_key_prefix(make_cache: Callable[..., Any]) -> None:
    prefixed = make_cache("prefixed", KEY_PREFIX="site1")
    prefixed.set("k", "v")
    assert prefixed.make_key("k") == "site1:1:k"
    assert raw_client(prefixed).exists("site1:1:k") == 1
    assert prefixed.get("k") == "v"
    other = make_cache("other", KEY_PREFIX="site2")
    assert other.get("k") is None


def test_key_function(make_cache: Callable[..., Any]) -> None:
    custom = make_cache("custom", KEY_PREFIX="p", KEY_FUNCTION="tests.test_conformance.custom_key")
    custom.set("k", "v")
    assert raw_client(custom).exists("custom/p/v1/k") == 1
    assert custom.get("k") == "v"
    assert custom.get_many(["k"]) == {"k": "v"}
    assert custom.delete("k") is True
    assert raw_client(custom).exists("custom/p/v1/k") == 0


# -- keys: Unicode, long keys, key manager, separator -----------------------------------


def test_unicode_keys(cache: Any) -> None:
    for i, key in enumerate(UNICODE_KEYS):
        assert cache.set(key, i) is True
        assert cache.get(key) == i
    assert cache.get_many(UNICODE_KEYS) == {k: i for i, k in enumerate(UNICODE_KEYS)}
    assert sorted(cache.keys("*")) == sorted(UNICODE_KEYS)
    assert sorted(cache.iter_keys("*")) == sorted(UNICODE_KEYS)
    assert cache.incr(UNICODE_KEYS[1]) == 2
    assert raw_client(cache).exists(":1:日本語のキー".encode()) == 1
    for key in UNICODE_KEYS:
        assert cache.delete(key) is True
    assert cache.get_many(UNICODE_KEYS) == {}


def test_long_keys_are_hashed_not_rejected(cache: Any) -> None:
    limit = cache._max_key_length
    assert limit == 250
    a = "x" * 400 + "a"
    b = "x" * 400 + "b"
    uni = "é☕" * 200
    cache.set(a, "A")
    cache.set(b, "B")
    cache.set(uni, "U")
    assert (cache.get(a), cache.get(b), cache.get(uni)) == ("A", "B", "U")
    assert cache.make_key(a) != cache.make_key(b)
    stored = [cache.make_key(k) for k in cache.keys("*")]
    assert len(stored) == 3
    assert all(len(k) <= limit for k in stored)
    assert all(k.startswith(":1:") for k in stored)
    assert cache.get_many([a, b, uni, "short"]) == {a: "A", b: "B", uni: "U"}
    cache.set(a + "n", 1)
    assert cache.incr(a + "n") == 2
    assert cache.has_key(b) is True
    assert cache.delete(a) is True
    assert cache.get(a) is None
    assert cache.get(b) == "B"
    # exactly at the limit: stored as is
    exact = "k" * (limit - len(":1:"))
    cache.set(exact, "E")
    assert raw_client(cache).exists(f":1:{exact}") == 1


def test_key_manager(cache: Any) -> None:
    km = cache.keys_manager
    key = km.custom("analytics", "daily", "2024-01-15")
    assert key == "analytics:daily:2024-01-15"
    cache.set(key, {"views": 10})
    assert km.full("analytics", "daily", "2024-01-15") == ":1:analytics:daily:2024-01-15"
    assert raw_client(cache).exists(":1:analytics:daily:2024-01-15") == 1
    cache.set(km.custom("analytics", "daily", "2024-01-16"), 1)
    cache.set(km.custom("analytics", "weekly", "2024-03"), 1)
    assert sorted(cache.keys(km.pattern("analytics", "daily"))) == [
        "analytics:daily:2024-01-15",
        "analytics:daily:2024-01-16",
    ]
    cache.set(km.user(42, "profile"), "p")
    cache.set(km.user(421, "profile"), "q")
    assert cache.delete_pattern(km.user_all(42)) == 1
    assert cache.get(km.user(421, "profile")) == "q"


def test_custom_separator(make_cache: Callable[..., Any]) -> None:
    piped = make_cache("piped", KEY_PREFIX="app", options={"KEY_SEPARATOR": "|"})
    key = piped.keys_manager.custom("analytics", "daily", "2024-01-15")
    assert key == "analytics|daily|2024-01-15"
    piped.set(key, 5)
    assert raw_client(piped).get("app|1|analytics|daily|2024-01-15") == b"5"
    assert piped.get(key) == 5
    assert piped.keys("analytics|*") == [key]
    assert list(piped.iter_keys("*")) == [key]
    assert piped.incr(key) == 6
    colon = make_cache("colon", KEY_PREFIX="app")
    colon.set("k", 1)
    assert piped.clear() is True
    assert piped.get(key) is None
    assert colon.get("k") == 1


# -- values ------------------------------------------------------------------------------

PICKLE_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -17,
    2**70,
    3.25,
    -0.0,
    "",
    "text é ☕",
    b"\x00\xffbytes",
    {"nested": {"list": [1, 2, {"x": None}]}},
    [1, "two", 3.0, None],
    (1, 2),
    {1, 2, 3},
    Decimal("12345.6789"),
    datetime(2024, 1, 15, 12, 30, tzinfo=ZoneInfo("Europe/Paris")),
    datetime(2024, 1, 15, 12, 30, tzinfo=UTC),
    timedelta(hours=3),
    Campaign(
        id=7,
        title="Launch",
        budget=Decimal("99.90"),
        starts=datetime(2024, 1, 15, tzinfo=UTC),
        tags=["tiktok", "youtube"],
    ),
]


@pytest.mark.parametrize("value", PICKLE_VALUES, ids=lambda v: type(v).__name__)
def test_values_round_trip(cache: Any, value: Any) -> None:
    cache.set("v", value)
    got = cache.get("v")
    assert got == value
    assert type(got) is type(value)
    if isinstance(value, datetime):
        assert got.utcoffset() == value.utcoffset()
    cache.set_many({"m": value})
    assert cache.get_many(["m"]) == {"m": value}


def test_model_instance_round_trip(cache: Any) -> None:
    user = User(id=5, username="alice", email="a@example.com")
    cache.set("user", user)
    got = cache.get("user")
    assert isinstance(got, User)
    assert (got.pk, got.username, got.email) == (5, "alice", "a@example.com")


def test_json_serializer(make_cache: Callable[..., Any]) -> None:
    js = make_cache("js", options={"SERIALIZER": "json"}, KEY_PREFIX="js")
    values = [None, True, 1.5, "text é", [1, "a", None], {"a": {"b": [1, 2]}}, 2**70]
    for i, value in enumerate(values):
        js.set(f"k{i}", value)
        got = js.get(f"k{i}")
        assert got == value
        assert type(got) is type(value)
    js.set("dict", {"a": 1})
    assert raw_client(js).get(js.make_key("dict")) == b'{"a": 1}'
    # Decimal and datetime go through DjangoJSONEncoder, as text
    js.set("dec", Decimal("1.10"))
    assert js.get("dec") == "1.10"
    assert js.incr(f"k{len(values) - 1}") == 2**70 + 1


def test_msgpack_serializer(make_cache: Callable[..., Any]) -> None:
    mp = make_cache("mp", options={"SERIALIZER": "msgpack"}, KEY_PREFIX="mp")
    values = [None, True, 1.5, "text é", b"\x00\xff", [1, "a"], {"a": {"b": [1, 2]}}, 12]
    for i, value in enumerate(values):
        mp.set(f"k{i}", value)
        got = mp.get(f"k{i}")
        assert got == value
        assert type(got) is type(value)
    mp.set("dict", {"a": 1})
    raw = raw_client(mp).get(mp.make_key("dict"))
    assert msgpack.unpackb(raw) == {"a": 1}
    assert mp.get_many(["k3", "k4", "nope"]) == {"k3": "text é", "k4": b"\x00\xff"}


def test_compression(make_cache: Callable[..., Any]) -> None:
    zc = make_cache(
        "zc", KEY_PREFIX="zc", options={"COMPRESSOR": "zlib", "COMPRESS_MIN_LENGTH": 100}
    )
    big = {"text": "creator campaign " * 2000, "n": list(range(100))}
    small = "tiny"
    zc.set("big", big)
    zc.set("small", small)
    zc.set_many({"big2": big})
    raw_big = raw_client(zc).get(zc.make_key("big"))
    plain = pickle.dumps(big, protocol=pickle.HIGHEST_PROTOCOL)
    assert len(raw_big) < len(plain) // 10
    assert raw_big[:1] == b"x"  # zlib header
    raw_small = raw_client(zc).get(zc.make_key("small"))
    assert raw_small[:1] == b"\x80"  # a bare pickle: below the threshold
    assert pickle.loads(raw_small) == small
    assert zc.get("big") == big
    assert zc.get("small") == small
    assert zc.get_many(["big", "big2", "small"]) == {"big": big, "big2": big, "small": small}


@pytest.mark.parametrize(
    ("serializer", "value"),
    [("pickle", lambda: None), ("json", {1, 2}), ("msgpack", object())],
    ids=["pickle-lambda", "json-set", "msgpack-object"],
)
def test_unserialisable_value_raises_and_writes_nothing(
    make_cache: Callable[..., Any], serializer: str, value: Any
) -> None:
    c = make_cache("ser", KEY_PREFIX="ser", options={"SERIALIZER": serializer})
    c.set("k", "previous")
    with pytest.raises(TypeError) as info:
        c.set("k", value)
    assert isinstance(info.value, SerializationError)
    message = str(info.value)
    assert "k" in message and c.make_key("k") in message
    assert serializer in message.lower()
    assert c.get("k") == "previous"
    with pytest.raises(TypeError, match=f"'{c.make_key('other')}'"):
        c.set_many({"fine": 1, "other": value})
    assert c.get("k") == "previous"
    assert c.has_key("fine") is False
    with pytest.raises(TypeError):
        c.add("new", value)
    assert c.has_key("new") is False


@pytest.mark.parametrize(
    "garbage", [b"\x80\x05not a pickle", b"12abc", b"{json?", b"\xff\xfe\xfd"], ids=repr
)
def test_corrupt_bytes_read_as_miss_and_are_deleted(cache: Any, garbage: bytes) -> None:
    client = raw_client(cache)
    client.set(cache.make_key("bad"), garbage)
    client.set(cache.make_key("bad2"), garbage)
    cache.set("good", "fine")
    assert cache.get("bad", "default") == "default"
    assert client.exists(cache.make_key("bad")) == 0
    assert cache.get_many(["bad2", "good"]) == {"good": "fine"}
    assert client.exists(cache.make_key("bad2")) == 0
    assert cache.get("good") == "fine"


def test_corrupt_compressed_value_is_a_miss(make_cache: Callable[..., Any]) -> None:
    zc = make_cache("zc", KEY_PREFIX="zc", options={"COMPRESSOR": "zlib"})
    client = raw_client(zc)
    client.set(zc.make_key("bad"), b"x\x9c broken zlib stream")
    assert zc.get("bad", "d") == "d"
    assert client.exists(zc.make_key("bad")) == 0


# -- async API ----------------------------------------------------------------------------


def test_async_api(cache: Any) -> None:
    async def scenario() -> None:
        assert await cache.aset("a", {"x": 1}) is True
        assert await cache.aget("a") == {"x": 1}
        assert await cache.aget("missing", "d") == "d"
        assert await cache.aadd("a", "other") is False
        assert await cache.aadd("b", 10) is True
        assert await cache.ahas_key("b") is True
        assert await cache.aincr("b", 5) == 15
        assert await cache.adecr("b", 3) == 12
        assert await cache.atouch("b", 100) is True
        assert 95 <= cache.ttl("b") <= 100
        assert await cache.aset_many({"c": 1, "d": 2}) == []
        assert await cache.aget_many(["a", "c", "d", "zz"]) == {"a": {"x": 1}, "c": 1, "d": 2}
        await cache.adelete_many(["c", "d"])
        assert await cache.aget_many(["c", "d"]) == {}
        assert await cache.adelete("a") is True
        assert await cache.ahas_key("a") is False
        assert await cache.aget_or_set("g", lambda: "made") == "made"
        assert await cache.aget_or_set("g", "ignored") == "made"
        assert await cache.aincr_version("g") == 2
        assert await cache.aget("g", version=2) == "made"
        with pytest.raises(ValueError):
            await cache.aincr("nope")
        assert await cache.aclear() is True
        assert await cache.aget("b") is None

    asyncio.run(scenario())


# -- Redis extras -------------------------------------------------------------------------


def test_ttl_and_pttl(cache: Any) -> None:
    assert cache.ttl("missing") == 0
    assert cache.pttl("missing") == 0
    cache.set("k", "v", timeout=100)
    assert 98 <= cache.ttl("k") <= 100
    assert 98_000 <= cache.pttl("k") <= 100_000


def test_expire_pexpire_persist(cache: Any) -> None:
    cache.set("k", "v", timeout=None)
    assert cache.expire("k", 50) is True
    assert 48 <= cache.ttl("k") <= 50
    assert cache.pexpire("k", 20_000) is True
    assert 18_000 <= cache.pttl("k") <= 20_000
    assert cache.persist("k") is True
    assert cache.ttl("k") is None
    assert cache.expire("k", None) is False  # already persistent
    assert cache.expire("missing", 10) is False
    assert cache.pexpire("missing", 10) is False
    assert cache.persist("missing") is False
    assert cache.expire("k", 0) is True
    assert cache.get("k") is None


def test_expire_at_and_pexpire_at(cache: Any) -> None:
    cache.set("k", "v", timeout=None)
    assert cache.expire_at("k", datetime.now(UTC) + timedelta(seconds=300)) is True
    assert 295 <= cache.ttl("k") <= 300
    when_ms = int((time.time() + 60) * 1000)
    assert cache.pexpire_at("k", when_ms) is True
    assert 55_000 <= cache.pttl("k") <= 60_000
    assert cache.expire_at("missing", datetime.now(UTC) + timedelta(seconds=5)) is False
    assert cache.expire_at("k", datetime.now(UTC) - timedelta(seconds=5)) is True
    assert cache.get("k") is None


def test_keys_iter_keys_delete_pattern(cache: Any) -> None:
    names = [f"user:{i}:profile" for i in range(25)] + ["campaign:1", "campaign:2"]
    cache.set_many(dict.fromkeys(names, 1))
    cache.set("user:99:profile", 1, version=2)
    assert sorted(cache.keys("user:*")) == sorted(names[:25])
    assert sorted(cache.keys("campaign:?")) == ["campaign:1", "campaign:2"]
    assert sorted(cache.iter_keys("user:*", itersize=5)) == sorted(names[:25])
    assert cache.keys("user:*", version=2) == ["user:99:profile"]
    assert cache.keys("nothing*") == []
    assert cache.delete_pattern("user:*") == 25
    assert cache.keys("user:*") == []
    assert sorted(cache.keys("*")) == ["campaign:1", "campaign:2"]
    assert cache.get("user:99:profile", version=2) == 1
    assert cache.delete_pattern("user:*", version=2) == 1


def test_lock(cache: Any) -> None:
    first = cache.lock("job", timeout=10)
    assert first.acquire(blocking=False) is True
    assert raw_client(cache).exists(cache.make_key("job")) == 1
    second = cache.lock("job", timeout=10)
    assert second.acquire(blocking=False) is False
    first.release()
    assert second.acquire(blocking=False) is True
    second.release()
    with cache.lock("ctx", timeout=5, blocking_timeout=1):
        assert cache.lock("ctx").acquire(blocking=False) is False
    assert cache.lock("ctx").acquire(blocking=False) is True


# -- Cluster: multi-key operations over every primary ------------------------------------


@pytest.fixture
def cluster_cache(redis_cluster: RedisCluster, settings: Any) -> Iterator[Any]:
    settings.CACHES = {
        "default": cluster_entry(redis_cluster),
        "prefixed": {**cluster_entry(redis_cluster), "KEY_PREFIX": "pfx"},
    }
    cache = caches["default"]
    flush(cache)
    yield cache
    flush(cache)


def _spread_keys(cluster: RedisCluster, cache: Any, count: int = 60) -> list[str]:
    keys = [f"spread-{i}" for i in range(count)]
    fulls = [cache.make_key(k) for k in keys]
    assert len({key_slot(f.encode()) for f in fulls}) > count // 2
    primaries = {cluster.primary_for_key(f).port for f in fulls}
    assert len(primaries) == 3
    return keys


def test_cluster_multi_key_operations_span_all_primaries(
    cluster_cache: Any, redis_cluster: RedisCluster
) -> None:
    cache = cluster_cache
    keys = _spread_keys(redis_cluster, cache)
    assert cache.set_many({k: f"value-{k}" for k in keys}) == []
    for k in keys:
        full = cache.make_key(k)
        with redis_cluster.primary_for_key(full).client() as node:
            assert node.get(full) is not None
    assert cache.get_many(keys) == {k: f"value-{k}" for k in keys}
    assert sorted(cache.keys("spread-*")) == sorted(keys)
    assert sorted(cache.iter_keys("spread-*", itersize=7)) == sorted(keys)
    cache.delete_many(keys[:30])
    assert cache.get_many(keys) == {k: f"value-{k}" for k in keys[30:]}
    assert cache.delete_pattern("spread-*") == 30
    assert cache.get_many(keys) == {}
    for primary in redis_cluster.primaries():
        with primary.client() as node:
            assert node.dbsize() == 0


def test_cluster_clear_with_prefix(cluster_cache: Any, redis_cluster: RedisCluster) -> None:
    keys = _spread_keys(redis_cluster, cluster_cache)
    prefixed = caches["prefixed"]
    cluster_cache.set_many(dict.fromkeys(keys, 1))
    prefixed.set_many(dict.fromkeys(keys, 2))
    prefixed_fulls = [prefixed.make_key(k) for k in keys]
    assert len({redis_cluster.primary_for_key(f).port for f in prefixed_fulls}) == 3
    assert prefixed.clear() is True
    assert prefixed.get_many(keys) == {}
    assert cluster_cache.get_many(keys) == dict.fromkeys(keys, 1)
    assert cluster_cache.clear() is True
    for primary in redis_cluster.primaries():
        with primary.client() as node:
            assert node.dbsize() == 0


# -- drop-in with django-redis ---------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "zlib"])
def test_drop_in_with_django_redis(
    redis_server: RedisServer, settings: Any, compressed: bool
) -> None:
    ours_options: dict[str, Any] = {}
    theirs_options: dict[str, Any] = {}
    if compressed:
        ours_options = {"COMPRESSOR": "zlib", "COMPRESS_MIN_LENGTH": 15}
        theirs_options = {"COMPRESSOR": "django_redis.compressors.zlib.ZlibCompressor"}
    settings.CACHES = {
        "ours": {**single_entry(redis_server, **ours_options), "KEY_PREFIX": "shared"},
        "theirs": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_server.url,
            "KEY_PREFIX": "shared",
            "OPTIONS": theirs_options,
        },
    }
    ours, theirs = caches["ours"], caches["theirs"]
    ours.clear()
    values = {
        "int": 42,
        "str": "hello é",
        "dict": {"a": [1, 2, 3]},
        "big": "campaign " * 500,
        "dt": datetime(2024, 1, 15, tzinfo=UTC),
        "none": None,
        "bool": True,
    }
    theirs.set_many({f"t-{k}": v for k, v in values.items()}, timeout=300)
    assert ours.get_many([f"t-{k}" for k in values]) == {f"t-{k}": v for k, v in values.items()}
    assert 290 <= ours.ttl("t-int") <= 300
    assert ours.incr("t-int") == 43
    ours.set_many({f"o-{k}": v for k, v in values.items()}, timeout=300)
    for k, v in values.items():
        assert theirs.get(f"o-{k}") == v
    assert theirs.incr("o-int") == 43
    assert sorted(theirs.keys("o-*")) == sorted(f"o-{k}" for k in values)
    assert sorted(ours.keys("t-*")) == sorted(f"t-{k}" for k in values)
    if compressed:
        raw = ours.get_client().get(ours.make_key("o-big"))
        assert len(raw) < 200
    ours.clear()
    assert theirs.get("t-str") is None


def test_lone_surrogate_keys_are_valid_keys(cache: Any) -> None:
    key = "bad-\ud800-key"
    assert cache.set(key, "v") is True
    assert cache.get(key) == "v"
    assert cache.get_many([key]) == {key: "v"}
    assert cache.delete(key) is True


def test_incr_on_a_redis_structure_is_a_type_error(cache: Any) -> None:
    cache.sadd("a-set", 1)
    with pytest.raises(TypeError, match="not a counter"):
        cache.incr("a-set")
