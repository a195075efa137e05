"""Set, hash and sorted-set helpers: django-redis compatible, on every mode, never raising,
each with a native async twin that gives the same result."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.cluster
from django.core.cache import caches
from django_redis.cache import RedisCache as DjangoRedisCache
from django_redis.client import DefaultClient
from redis.crc import key_slot

from django_creator_cache.backend import RedisCache
from tests.conftest import BACKEND, Target, cluster_entry, flush, single_entry
from tests.redis_servers import RedisCluster, RedisServer

DICT = {"campaign": 7, "tags": ["a", "b"]}


def slots(cache: Any, *keys: str, version: int | None = None) -> set[int]:
    return {key_slot(cache.make_key(k, version).encode()) for k in keys}


def raw_members(cache: Any, key: str) -> set[bytes]:
    return set(cache.get_client().smembers(cache.make_key(key)))


async def collect(members: Any) -> list[Any]:
    """What an async iterator (``asscan_iter``) yields."""
    return [member async for member in members]


# -- sets ---------------------------------------------------------------------------


def test_sadd_smembers_scard_round_trip_ints_strings_tuples(cache: Any) -> None:
    assert cache.sadd("s", 1, "two", (3, "x")) == 3
    assert cache.sadd("s", 1, "new") == 1
    assert cache.smembers("s") == {1, "two", (3, "x"), "new"}
    assert cache.scard("s") == 4
    assert cache.scard("missing") == 0
    assert cache.smembers("missing") == set()
    # Integers are stored raw, like django-redis, so Redis sees b"1".
    assert b"1" in raw_members(cache, "s")


def test_dict_members_round_trip(cache: Any) -> None:
    assert cache.sadd("d", DICT) == 1
    assert cache.sismember("d", DICT) is True
    assert cache.sismember("d", {"campaign": 8}) is False
    assert cache.srandmember("d") == DICT
    assert cache.srandmember("d", 3) == [DICT]
    assert cache.spop("d") == DICT
    assert cache.scard("d") == 0


def test_sismember_smismember_srem(cache: Any) -> None:
    cache.sadd("s", 1, "a", 2.5)
    assert cache.sismember("s", 1) is True
    assert cache.sismember("s", "1") is False
    assert cache.smismember("s", 1, "b", 2.5, "a") == [True, False, True, True]
    assert cache.srem("s", 1, "zzz") == 1
    assert cache.srem("s", 1) == 0
    assert cache.smembers("s") == {"a", 2.5}


def test_spop_and_srandmember(cache: Any) -> None:
    assert cache.spop("empty") is None
    assert cache.srandmember("empty") is None
    assert cache.spop("empty", 2) == set()
    assert cache.srandmember("empty", 2) == []
    cache.sadd("s", 1, 2, 3, 4)
    one = cache.srandmember("s")
    assert one in {1, 2, 3, 4}
    picked = cache.srandmember("s", 2)
    assert isinstance(picked, list)
    assert len(picked) == 2
    assert set(picked) <= {1, 2, 3, 4}
    assert cache.scard("s") == 4
    popped = cache.spop("s", 3)
    assert isinstance(popped, set)
    assert len(popped) == 3
    last = cache.spop("s")
    assert popped | {last} == {1, 2, 3, 4}
    assert cache.scard("s") == 0


def test_smove(cache: Any) -> None:
    cache.sadd("from", "x", DICT)
    assert cache.smove("from", "to", "x") is True
    assert cache.smove("from", "to", "x") is False
    assert cache.smove("from", "to", DICT) is True
    assert cache.smembers("from") == set()
    assert cache.sismember("to", DICT) is True
    assert cache.sismember("to", "x") is True


def test_sscan_and_sscan_iter(cache: Any) -> None:
    members = {f"m{i}" for i in range(30)} | {1, 2}
    cache.sadd("s", *members)
    # One SSCAN call from cursor 0: part of the set, or all of it with a large COUNT.
    assert cache.sscan("s") <= members
    assert cache.sscan("s", count=1000) == members
    assert cache.sscan("missing") == set()
    iterator = cache.sscan_iter("s", count=5)
    assert not isinstance(iterator, set | list)
    assert set(iterator) == members
    assert list(cache.sscan_iter("missing")) == []


def test_sscan_match_is_encoded_like_a_member(settings: Any, redis_server: RedisServer) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": BACKEND,
            "LOCATION": redis_server.url,
            "KEY_PREFIX": "json",
            "OPTIONS": {"SERIALIZER": "json"},
        }
    }
    cache = caches["default"]
    cache.delete("s")
    cache.sadd("s", "apple", "avocado", "banana")
    # With JSON the encoded pattern is '"a*"', which matches '"apple"' and '"avocado"'.
    assert cache.sscan("s", match="a*") == {"apple", "avocado"}
    assert sorted(cache.sscan_iter("s", match="b*")) == ["banana"]
    assert asyncio.run(cache.asscan("s", match="a*")) == {"apple", "avocado"}
    assert asyncio.run(collect(cache.asscan_iter("s", match="b*"))) == ["banana"]
    cache.delete("s")


def test_sscan_match_with_compression_is_refused(settings: Any, redis_server: RedisServer) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": BACKEND,
            "LOCATION": redis_server.url,
            "OPTIONS": {"COMPRESSOR": "zlib"},
        }
    }
    cache = caches["default"]
    with pytest.raises(ValueError, match="compression"):
        cache.sscan("s", match="a*")
    with pytest.raises(ValueError, match="compression"):
        cache.sscan_iter("s", match="a*")
    # The async twins refuse it too: ``asscan_iter`` when called, like ``sscan_iter``.
    with pytest.raises(ValueError, match="compression"):
        asyncio.run(cache.asscan("s", match="a*"))
    with pytest.raises(ValueError, match="compression"):
        cache.asscan_iter("s", match="a*")
    assert cache.sscan("s") == set()


def fill_campaign_sets(cache: Any, a: str, b: str, c: str) -> None:
    cache.sadd(a, 1, 2, 3, "x", DICT["campaign"])
    cache.sadd(b, 2, 3, "y")
    cache.sadd(c, 3, "x", "z")


def check_set_algebra(cache: Any, a: str, b: str, c: str, dest: str) -> None:
    assert cache.sdiff(a, b, c) == {1, 7}
    assert cache.sinter(a, b, c) == {3}
    assert cache.sinter(a, c) == {3, "x"}
    assert cache.sunion(a, b, c) == {1, 2, 3, 7, "x", "y", "z"}
    assert cache.sdiff(a, "missing") == {1, 2, 3, 7, "x"}
    assert cache.sinter(a, "missing") == set()

    assert cache.sdiffstore(dest, a, b) == 3
    assert cache.smembers(dest) == {1, 7, "x"}
    assert cache.sinterstore(dest, a, b) == 2
    assert cache.smembers(dest) == {2, 3}
    assert cache.sunionstore(dest, b, c) == 5
    assert cache.smembers(dest) == {2, 3, "x", "y", "z"}
    # An empty result deletes the destination, as Redis does.
    assert cache.sinterstore(dest, b, "missing") == 0
    assert cache.has_key(dest) is False
    # The destination may be one of the sources.
    assert cache.sunionstore(a, a, c) == 6
    assert cache.smembers(a) == {1, 2, 3, 7, "x", "z"}


def test_set_algebra_on_keys_in_different_slots(target: Target) -> None:
    cache = target.cache
    keys = ("campaign:1:promoters", "campaign:2:promoters", "campaign:3:promoters", "out")
    if target.mode == "cluster":
        assert len(slots(cache, *keys)) == len(keys)
    fill_campaign_sets(cache, *keys[:3])
    check_set_algebra(cache, *keys)


def test_set_algebra_on_keys_in_one_slot(target: Target) -> None:
    cache = target.cache
    keys = ("{camp}:a", "{camp}:b", "{camp}:c", "{camp}:out")
    assert len(slots(cache, *keys)) == 1
    fill_campaign_sets(cache, *keys[:3])
    check_set_algebra(cache, *keys)


@pytest.fixture
def cluster_target(settings: Any, redis_cluster: RedisCluster) -> Iterator[Target]:
    settings.CACHES = {"default": cluster_entry(redis_cluster)}
    cache = caches["default"]
    flush(cache)
    yield Target("cluster", cache, redis_cluster.commandstats)
    flush(cache)


def test_cluster_uses_native_commands_only_within_one_slot(cluster_target: Target) -> None:
    target = cluster_target
    cache = target.cache
    cache.sadd("{t}a", 1, 2)
    cache.sadd("{t}b", 2)
    cache.sadd("left", 1, 2)
    cache.sadd("right", 2)

    # Counts are summed over primaries and replicas: writes are counted on both.
    native = target.count_commands(lambda: cache.sdiffstore("{t}dest", "{t}a", "{t}b"))
    assert "sdiffstore" in native
    assert "smembers" not in native

    spread = target.count_commands(lambda: cache.sdiffstore("dest", "left", "right"))
    assert "sdiffstore" not in spread
    assert spread.get("smembers") == 2
    assert "del" in spread
    assert "sadd" in spread
    assert cache.smembers("dest") == {1}

    moved = target.count_commands(lambda: cache.smove("left", "right", 1))
    assert "smove" not in moved
    assert "srem" in moved
    assert "sadd" in moved
    assert cache.smembers("left") == {2}
    assert cache.smembers("right") == {1, 2}
    # Not in the source: nothing is added to the destination.
    missed = target.count_commands(lambda: cache.smove("left", "right", 99))
    assert "sadd" not in missed
    assert cache.sismember("right", 99) is False


def test_smove_within_one_slot(cache: Any) -> None:
    cache.sadd("{m}src", "a", "b")
    assert cache.smove("{m}src", "{m}dst", "a") is True
    assert cache.smove("{m}src", "{m}dst", "zz") is False
    assert cache.smembers("{m}src") == {"b"}
    assert cache.smembers("{m}dst") == {"a"}


def test_explicit_client_argument(cache: Any) -> None:
    client = cache.get_client()
    assert cache.sadd("s", 1, 2, client=client) == 2
    assert cache.sadd("t", 2, client=client) == 1
    assert cache.smembers("s", client=client) == {1, 2}
    assert cache.sdiff("s", "t", client=client) == {1}
    assert cache.sunionstore("u", "s", "t", client=client) == 2
    assert cache.smove("s", "t", 1, client=client) is True
    assert cache.hset("h", "f", 1, client=client) == 1
    assert cache.zadd("z", {"a": 1}, client=client) == 1
    assert cache.zrange("z", 0, -1, client=client) == ["a"]


def test_corrupt_members_are_skipped(cache: Any) -> None:
    cache.sadd("s", "good", 1)
    cache.get_client().sadd(cache.make_key("s"), b"\xffnot-a-pickle")
    assert cache.smembers("s") == {"good", 1}
    cache.zadd("z", {"good": 1})
    cache.get_client().zadd(cache.make_key("z"), {b"\xffjunk": 2})
    assert cache.zrange("z", 0, -1, withscores=True) == [("good", 1.0)]


# -- hashes -------------------------------------------------------------------------


def test_hash_helpers(cache: Any) -> None:
    assert cache.hset("h", "views", 10) == 1
    assert cache.hset("h", "views", 11) == 0
    assert cache.hset("h", mapping={"meta": DICT, "name": "camp", "likes": 3}) == 3
    assert cache.hset("h", "shares", 1, mapping={"likes": 4, "comments": 0}) == 2
    assert cache.hlen("h") == 6
    assert sorted(cache.hkeys("h")) == ["comments", "likes", "meta", "name", "shares", "views"]
    assert cache.hexists("h", "meta") is True
    assert cache.hexists("h", "nope") is False
    raw = cache.get_client().hgetall(cache.make_key("h"))
    # Values are encoded like cache values: ints raw, everything else serialised.
    assert raw[b"views"] == b"11"
    assert raw[b"likes"] == b"4"
    assert cache.codec.decode(raw[b"meta"]) == DICT
    assert cache.codec.decode(raw[b"name"]) == "camp"
    assert cache.hdel("h", "views") == 1
    assert cache.hdel("h", "views") == 0
    assert cache.hlen("h") == 5
    assert cache.hlen("missing") == 0
    assert cache.hkeys("missing") == []


# -- sorted sets ---------------------------------------------------------------------


def test_leaderboard(cache: Any) -> None:
    scores = {"alice": 120, "bob": 300, "carol": 75.5, DICT["campaign"]: 200}
    assert cache.zadd("board", scores) == 4
    assert cache.zcard("board") == 4
    assert cache.zrange("board", 0, -1) == ["carol", "alice", 7, "bob"]
    assert cache.zrange("board", 0, 1, desc=True, withscores=True) == [
        ("bob", 300.0),
        (7, 200.0),
    ]
    assert cache.zrevrange("board", 0, -1, withscores=True) == [
        ("bob", 300.0),
        (7, 200.0),
        ("alice", 120.0),
        ("carol", 75.5),
    ]
    assert cache.zrange("board", 0, -1, withscores=True, score_cast_func=int) == [
        ("carol", 75),
        ("alice", 120),
        (7, 200),
        ("bob", 300),
    ]
    assert cache.zrank("board", "carol") == 0
    assert cache.zrank("board", "bob") == 3
    assert cache.zrank("board", "nobody") is None
    assert cache.zscore("board", "carol") == 75.5
    assert cache.zscore("board", 7) == 200.0
    assert cache.zscore("board", "nobody") is None

    assert cache.zincrby("board", 250, "alice") == 370.0
    assert cache.zrevrange("board", 0, 0) == ["alice"]
    assert cache.zincrby("board", 5, "dave") == 5.0

    assert cache.zcount("board", 100, 300) == 2
    assert cache.zcount("board", "-inf", "+inf") == 5
    assert cache.zrangebyscore("board", 50, 300) == ["carol", 7, "bob"]
    assert cache.zrangebyscore("board", "(75.5", 300, withscores=True) == [
        (7, 200.0),
        ("bob", 300.0),
    ]
    assert cache.zrangebyscore("board", "-inf", "+inf", start=1, num=2) == ["carol", 7]
    assert cache.zrevrangebyscore("board", "+inf", 100, withscores=True) == [
        ("alice", 370.0),
        ("bob", 300.0),
        (7, 200.0),
    ]
    assert cache.zrevrangebyscore("board", 400, 0, start=0, num=1) == ["alice"]

    assert cache.zrem("board", "dave", "nobody") == 1
    assert cache.zremrangebyscore("board", 0, 100) == 1
    assert cache.zrange("board", 0, -1) == [7, "bob", "alice"]


def test_sorted_set_members_are_always_serialised(cache: Any) -> None:
    cache.zadd("z", {5: 1.0, DICT["campaign"]: 2.0})
    raw = cache.get_client().zrange(cache.make_key("z"), 0, -1)
    # Unlike plain sets, ints are pickled (django-redis encode(allow_int=False)).
    assert b"5" not in raw
    assert cache.zrange("z", 0, -1) == [5, 7]
    cache.zadd("zd", {"k": 1})
    assert cache.zadd("zd", {"k": 2}, nx=True) == 0
    assert cache.zscore("zd", "k") == 1.0


def test_zadd_flags(cache: Any) -> None:
    assert cache.zadd("z", {"a": 1, "b": 2}) == 2
    assert cache.zadd("z", {"a": 5, "c": 3}, nx=True) == 1
    assert cache.zscore("z", "a") == 1.0
    assert cache.zadd("z", {"a": 5, "d": 4}, xx=True) == 0
    assert cache.zscore("z", "a") == 5.0
    assert cache.zscore("z", "d") is None
    assert cache.zadd("z", {"a": 6, "b": 2}, ch=True) == 1
    assert cache.zadd("z", {"a": 1}, gt=True, ch=True) == 0
    assert cache.zadd("z", {"a": 1}, lt=True, ch=True) == 1
    assert cache.zadd("z", {"a": 2.5}, incr=True) == 3.5


def test_zpopmax_zpopmin(cache: Any) -> None:
    assert cache.zpopmax("empty") is None
    assert cache.zpopmin("empty") is None
    assert cache.zpopmax("empty", 2) == []
    assert cache.zpopmin("empty", 2) == []
    cache.zadd("z", {"a": 1, "b": 2, "c": 3, DICT["campaign"]: 4, "e": 5})
    assert cache.zpopmax("z") == ("e", 5.0)
    assert cache.zpopmax("z", 1) == [(7, 4.0)]
    assert cache.zpopmin("z") == ("a", 1.0)
    assert cache.zpopmin("z", 5) == [("b", 2.0), ("c", 3.0)]
    assert cache.zcard("z") == 0


# -- versions -------------------------------------------------------------------------


def test_versions_are_separate_keys(cache: Any) -> None:
    assert cache.sadd("s", 1, version=2) == 1
    assert cache.smembers("s") == set()
    assert cache.smembers("s", version=2) == {1}
    assert cache.sismember("s", 1, version=2) is True
    assert cache.smismember("s", 1, version=2) == [True]
    assert cache.scard("s", version=2) == 1
    assert cache.sscan("s", version=2) == {1}
    assert list(cache.sscan_iter("s", version=2)) == [1]
    cache.sadd("t", 1, 2)
    assert cache.sunion("s", "t", version=2) == {1}
    assert cache.sunion("s", "t") == {1, 2}
    assert cache.sunionstore("u", "s", "t", version=2) == 1
    assert cache.smembers("u") == set()
    assert cache.smembers("u", version=2) == {1}
    assert cache.sinterstore("i", "t", "s", version=2) == 0
    # sdiffstore versions its destination and its sources separately.
    assert cache.sdiffstore("d", "t", "s", version_dest=3, version_keys=1) == 2
    assert cache.smembers("d", version=3) == {1, 2}
    assert cache.smembers("d") == set()
    assert cache.smove("s", "m", 1, version=2) is True
    assert cache.smembers("m", version=2) == {1}
    assert cache.srem("m", 1) == 0
    assert cache.srem("m", 1, version=2) == 1
    assert cache.spop("t", version=2) is None
    assert cache.srandmember("t", version=2) is None

    cache.hset("h", "f", "v2", version=2)
    assert cache.hlen("h") == 0
    assert cache.hkeys("h", version=2) == ["f"]
    assert cache.hexists("h", "f", version=2) is True
    assert cache.hdel("h", "f") == 0
    assert cache.hdel("h", "f", version=2) == 1

    cache.zadd("z", {"a": 1}, version=2)
    assert cache.zcard("z") == 0
    assert cache.zcard("z", version=2) == 1
    assert cache.zrange("z", 0, -1, version=2) == ["a"]
    assert cache.zrevrange("z", 0, -1, version=2) == ["a"]
    assert cache.zrangebyscore("z", 0, 5, version=2) == ["a"]
    assert cache.zrevrangebyscore("z", 5, 0, version=2) == ["a"]
    assert cache.zcount("z", 0, 5, version=2) == 1
    assert cache.zscore("z", "a", version=2) == 1.0
    assert cache.zrank("z", "a", version=2) == 0
    assert cache.zincrby("z", 1, "a", version=2) == 2.0
    assert cache.zscore("z", "a") is None
    assert cache.zpopmin("z", version=2) == ("a", 2.0)
    cache.zadd("z", {"a": 1, "b": 2}, version=2)
    assert cache.zpopmax("z", version=2) == ("b", 2.0)
    assert cache.zrem("z", "a", version=2) == 1
    cache.zadd("z", {"a": 1}, version=2)
    assert cache.zremrangebyscore("z", 0, 5, version=2) == 1


# -- Redis unreachable -----------------------------------------------------------------

DOWN_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any], Any]] = [
    ("sadd", ("s", 1), {}, 0),
    ("scard", ("s",), {}, 0),
    ("sdiff", ("a", "b"), {}, set()),
    ("sdiffstore", ("d", "a", "b"), {}, 0),
    ("sinter", ("a", "b"), {}, set()),
    ("sinterstore", ("d", "a", "b"), {}, 0),
    ("smismember", ("s", 1, 2), {}, []),
    ("sismember", ("s", 1), {}, False),
    ("smembers", ("s",), {}, set()),
    ("smove", ("a", "b", 1), {}, False),
    ("spop", ("s",), {}, None),
    ("spop", ("s",), {"count": 2}, None),
    ("srandmember", ("s",), {}, None),
    ("srem", ("s", 1), {}, 0),
    ("sscan", ("s",), {}, set()),
    ("sunion", ("a", "b"), {}, set()),
    ("sunionstore", ("d", "a", "b"), {}, 0),
    ("hset", ("h", "f", 1), {}, 0),
    ("hset", ("h",), {"mapping": {"f": 1}}, 0),
    ("hdel", ("h", "f"), {}, 0),
    ("hlen", ("h",), {}, 0),
    ("hkeys", ("h",), {}, []),
    ("hexists", ("h", "f"), {}, False),
    ("zadd", ("z", {"a": 1}), {}, 0),
    ("zcard", ("z",), {}, 0),
    ("zcount", ("z", 0, 1), {}, 0),
    ("zincrby", ("z", 1, "a"), {}, None),
    ("zpopmax", ("z",), {}, None),
    ("zpopmin", ("z",), {"count": 2}, None),
    ("zrange", ("z", 0, -1), {"withscores": True}, []),
    ("zrangebyscore", ("z", 0, 1), {}, []),
    ("zrank", ("z", "a"), {}, None),
    ("zrem", ("z", "a"), {}, 0),
    ("zremrangebyscore", ("z", 0, 1), {}, 0),
    ("zrevrange", ("z", 0, -1), {}, []),
    ("zrevrangebyscore", ("z", 1, 0), {}, []),
    ("zscore", ("z", "a"), {}, None),
]


@pytest.fixture
def down_cache(settings: Any) -> Any:
    settings.CACHES = {
        "default": {
            "BACKEND": BACKEND,
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "RETRY_ATTEMPTS": 0},
        }
    }
    return caches["default"]


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "expected"),
    DOWN_CALLS,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(DOWN_CALLS)],
)
def test_redis_down_returns_the_default(
    down_cache: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], expected: Any
) -> None:
    result = getattr(down_cache, name)(*args, **kwargs)
    assert result == expected
    assert type(result) is type(expected)


def test_redis_down_sscan_iter_yields_nothing(down_cache: Any) -> None:
    assert list(down_cache.sscan_iter("s")) == []
    assert asyncio.run(collect(down_cache.asscan_iter("s"))) == []


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "expected"),
    DOWN_CALLS,
    ids=[f"a{c[0]}-{i}" for i, c in enumerate(DOWN_CALLS)],
)
def test_redis_down_async_twin_returns_the_default(
    down_cache: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], expected: Any
) -> None:
    result = asyncio.run(getattr(down_cache, f"a{name}")(*args, **kwargs))
    assert result == expected
    assert type(result) is type(expected)


def test_every_django_redis_helper_is_covered() -> None:
    names = {name for name, *_ in DOWN_CALLS} | {"sscan_iter"}
    assert len(names) == 36
    # Every set/hash/sorted-set helper django-redis has (there is no hget/hgetall/hmget).
    theirs = {n for n in vars(DjangoRedisCache) if n[0] in "shz"} - {"set", "set_many", "has_key"}
    assert theirs == names
    # Same parameter names and defaults as django-redis's client, for the method and its
    # async twin; ``client`` is keyword-only here (the runner takes it, not the steps).
    keyword = inspect.Parameter.KEYWORD_ONLY
    for name in names:
        reference = inspect.signature(getattr(DefaultClient, name)).parameters.values()
        expected = [
            (p.name, keyword if p.name == "client" else p.kind, p.default) for p in reference
        ]
        for method in (getattr(RedisCache, name), getattr(RedisCache, f"a{name}")):
            ours = inspect.signature(method).parameters.values()
            assert [(p.name, p.kind, p.default) for p in ours] == expected, method.__name__


# -- same results as django-redis ----------------------------------------------------------


def test_same_values_and_bytes_as_django_redis(settings: Any, redis_server: RedisServer) -> None:
    settings.CACHES = {
        "default": {"BACKEND": BACKEND, "LOCATION": redis_server.url, "KEY_PREFIX": "ours"}
    }
    ours = caches["default"]
    theirs = DjangoRedisCache(redis_server.url, {"KEY_PREFIX": "theirs"})
    raw = redis_server.client()
    raw.flushdb()

    def both(name: str, *args: Any, **kwargs: Any) -> Any:
        mine = getattr(ours, name)(*args, **kwargs)
        reference = getattr(theirs, name)(*args, **kwargs)
        assert mine == reference, name
        assert type(mine) is type(reference), name
        return mine

    assert both("sadd", "s", 1, "two", (3, "x"), 4.5) == 4
    assert both("sadd", "t", 1, "y") == 2
    assert both("scard", "s") == 4
    assert both("smembers", "s") == {1, "two", (3, "x"), 4.5}
    assert both("sdiff", "s", "t") == {"two", (3, "x"), 4.5}
    assert both("sinter", "s", "t") == {1}
    assert both("sunion", "s", "t") == {1, "two", (3, "x"), 4.5, "y"}
    assert both("sdiffstore", "d", "s", "t") == 3
    assert both("sinterstore", "i", "s", "t") == 1
    assert both("sunionstore", "u", "s", "t") == 5
    assert both("smismember", "s", 1, "nope", 4.5) == [True, False, True]
    assert both("sismember", "s", (3, "x")) is True
    assert both("smove", "s", "t", "two") is True
    assert both("srem", "t", "two", "zz") == 1
    assert both("sscan", "s") == {1, (3, "x"), 4.5}
    assert both("spop", "missing") is None
    assert both("srandmember", "missing", 2) == []
    assert both("sadd", "one", DICT) == 1
    assert both("srandmember", "one") == DICT
    assert both("srandmember", "one", 2) == [DICT]
    assert both("spop", "one") == DICT

    assert both("hset", "h", "f", 1, mapping={"g": DICT, "name": "x"}) == 3
    assert both("hlen", "h") == 3
    assert sorted(both("hkeys", "h")) == ["f", "g", "name"]
    assert both("hexists", "h", "g") is True
    assert both("hdel", "h", "f") == 1

    board = {"alice": 120, "bob": 300, "carol": 75.5, 7: 200}
    assert both("zadd", "z", board) == 4
    assert both("zadd", "z", {"alice": 1}, incr=True) == 121.0
    assert both("zcard", "z") == 4
    assert both("zcount", "z", 100, 250) == 2
    assert both("zincrby", "z", 10, "carol") == 85.5
    assert both("zrange", "z", 0, -1, withscores=True) == [
        ("carol", 85.5),
        ("alice", 121.0),
        (7, 200.0),
        ("bob", 300.0),
    ]
    assert both("zrange", "z", 0, 1, desc=True) == ["bob", 7]
    assert both("zrevrange", "z", 0, -1) == ["bob", 7, "alice", "carol"]
    assert both("zrangebyscore", "z", 100, 250, withscores=True) == [
        ("alice", 121.0),
        (7, 200.0),
    ]
    assert both("zrevrangebyscore", "z", "+inf", 0, start=1, num=2) == [7, "alice"]
    assert both("zrank", "z", 7) == 2
    assert both("zscore", "z", "bob") == 300.0
    assert both("zscore", "z", "nobody") is None
    assert both("zpopmax", "z") == ("bob", 300.0)
    assert both("zpopmin", "z", 2) == [("carol", 85.5), ("alice", 121.0)]
    assert both("zpopmin", "z", 2) == [(7, 200.0)]
    assert both("zpopmax", "z") is None
    assert both("zadd", "z2", {"a": 1, "b": 2}) == 2
    assert both("zrem", "z2", "a") == 1
    assert both("zremrangebyscore", "z2", 0, 10) == 1

    # Both libraries leave the same bytes in Redis, so a site can switch backends.
    for key in ("s", "t", "d", "i", "u"):
        assert raw.smembers(ours.make_key(key)) == raw.smembers(theirs.make_key(key)), key
    assert raw.hgetall(ours.make_key("h")) == raw.hgetall(theirs.make_key("h"))
    assert raw.zrange(ours.make_key("z2"), 0, -1) == raw.zrange(theirs.make_key("z2"), 0, -1)
    raw.flushdb()


# -- async twins -------------------------------------------------------------------------

CROSS = ("campaign:1:promoters", "campaign:2:promoters", "campaign:3:promoters", "out")
SLOT = ("{camp}:a", "{camp}:b", "{camp}:c", "{camp}:out")
TOUCHED = ("s", "one", "d", "h", "z", *CROSS, *SLOT)

# Every public helper at least once; the set algebra and smove both across slots and
# within one (on a Cluster: client-side pipelines, then native commands).
TWIN_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("sadd", ("s", 5, "two", "new"), {}),
    ("scard", ("s",), {}),
    ("sdiff", CROSS[:3], {}),
    ("sdiff", SLOT[:3], {}),
    ("sdiffstore", (CROSS[3], CROSS[0], CROSS[1]), {}),
    ("sdiffstore", (SLOT[3], SLOT[0], SLOT[1]), {}),
    ("sinter", CROSS[:2], {}),
    ("sinterstore", (CROSS[3], CROSS[0], CROSS[2]), {}),
    ("sinterstore", (SLOT[3], SLOT[1], "missing"), {}),
    ("smismember", ("s", 1, "nope", 4.5), {}),
    ("sismember", ("s", (3, "x")), {}),
    ("smembers", ("s",), {}),
    ("smove", (CROSS[0], CROSS[1], 1), {}),
    ("smove", (SLOT[0], SLOT[1], "x"), {}),
    ("smove", (CROSS[0], CROSS[1], "nobody"), {}),
    ("spop", ("d",), {}),
    ("spop", ("one", 2), {}),
    ("srandmember", ("d",), {}),
    ("srandmember", ("one", 3), {}),
    ("srem", ("s", 1, "zz"), {}),
    ("sscan", ("s",), {"count": 1000}),
    ("sscan_iter", ("s",), {"count": 2}),
    ("sunion", CROSS[:3], {}),
    ("sunionstore", (CROSS[3], CROSS[1], CROSS[2]), {}),
    ("sunionstore", (SLOT[3], SLOT[0], SLOT[2]), {}),
    ("hset", ("h", "f", 1), {"mapping": {"g": DICT}}),
    ("hdel", ("h", "views"), {}),
    ("hlen", ("h",), {}),
    ("hkeys", ("h",), {}),
    ("hexists", ("h", "meta"), {}),
    ("zadd", ("z", {"dave": 5, "alice": 1}), {"ch": True}),
    ("zadd", ("z", {"alice": 1}), {"incr": True}),
    ("zcard", ("z",), {}),
    ("zcount", ("z", 100, 250), {}),
    ("zincrby", ("z", 10, "carol"), {}),
    ("zpopmax", ("z",), {}),
    ("zpopmin", ("z", 2), {}),
    ("zrange", ("z", 0, -1), {"withscores": True}),
    ("zrange", ("z", 0, 1), {"desc": True, "withscores": True, "score_cast_func": int}),
    ("zrangebyscore", ("z", 100, 250), {"withscores": True}),
    ("zrank", ("z", 7), {}),
    # (No ``withscore=True``: ZRANK WITHSCORE needs Redis 7.2, the test servers may be 7.0.)
    ("zrem", ("z", "bob", "nobody"), {}),
    ("zremrangebyscore", ("z", 0, 100), {}),
    ("zrevrange", ("z", 0, -1), {}),
    ("zrevrangebyscore", ("z", "+inf", 0), {"start": 1, "num": 2}),
    ("zscore", ("z", "bob"), {}),
    ("zscore", ("z", "nobody"), {}),
]


def fill_twin_data(cache: Any) -> None:
    cache.sadd("s", 1, "two", (3, "x"), 4.5)
    cache.sadd("one", "only")
    cache.sadd("d", DICT)
    fill_campaign_sets(cache, *CROSS[:3])
    fill_campaign_sets(cache, *SLOT[:3])
    cache.hset("h", "views", 10, mapping={"meta": DICT, "name": "camp"})
    cache.zadd("z", {"alice": 120, "bob": 300, "carol": 75.5, 7: 200})


def stored(cache: Any) -> dict[str, Any]:
    """The raw content of every key the calls touch."""
    client = cache.get_client()
    readers: dict[bytes, Callable[[str], Any]] = {
        b"set": client.smembers,
        b"hash": client.hgetall,
        b"zset": lambda full: client.zrange(full, 0, -1, withscores=True),
        b"none": lambda full: None,
    }
    return {key: readers[client.type(cache.make_key(key))](cache.make_key(key)) for key in TOUCHED}


@pytest.fixture(params=["single", "cluster"])
def strict_cache(request: pytest.FixtureRequest, settings: Any) -> Iterator[Any]:
    """The backend in strict mode (a Redis failure raises instead of answering a default,
    so two equal results cannot both be defaults), on a single server and a Cluster."""
    if request.param == "single":
        entry = single_entry(request.getfixturevalue("redis_server"), STRICT=True)
    else:
        entry = cluster_entry(request.getfixturevalue("redis_cluster"), STRICT=True)
    settings.CACHES = {"default": entry}
    cache = caches["default"]
    if cache.cluster:
        assert len(slots(cache, *CROSS)) == len(CROSS)
    flush(cache)
    yield cache
    flush(cache)


_loop_thread: list[threading.Thread | None] = [None]


@pytest.fixture
def sync_client_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """While ``_loop_thread`` is set, a sync redis-py command in that thread fails the test:
    an async twin must run on redis.asyncio, not hop back to the sync client."""

    def refuse(original: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is _loop_thread[0]:
                raise AssertionError(f"sync redis-py call {args[:1]} inside an async twin")
            return original(self, *args, **kwargs)

        return guarded

    for klass, method in (
        (redis.Redis, "execute_command"),
        (redis.cluster.RedisCluster, "execute_command"),
        (redis.ConnectionPool, "get_connection"),  # the backend's short way (backend.direct)
        (redis.client.Pipeline, "execute"),
        (redis.cluster.ClusterPipeline, "execute"),
    ):
        monkeypatch.setattr(klass, method, refuse(getattr(klass, method)))


def run_twin(cache: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    async def main() -> Any:
        _loop_thread[0] = threading.current_thread()
        try:
            twin = getattr(cache, f"a{name}")
            if name == "sscan_iter":
                return await collect(twin(*args, **kwargs))
            return await twin(*args, **kwargs)
        finally:
            _loop_thread[0] = None

    return asyncio.run(main())


def test_every_helper_has_an_async_twin() -> None:
    names = {name for name, *_ in DOWN_CALLS} | {"sscan_iter"}
    assert {name for name, *_ in TWIN_CALLS} == names
    for name in names - {"sscan_iter"}:
        assert inspect.iscoroutinefunction(getattr(RedisCache, f"a{name}")), name


@pytest.mark.usefixtures("sync_client_refused")
@pytest.mark.parametrize(
    ("name", "args", "kwargs"), TWIN_CALLS, ids=[f"{c[0]}-{i}" for i, c in enumerate(TWIN_CALLS)]
)
def test_async_twin_gives_the_same_result(
    strict_cache: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    cache = strict_cache
    fill_twin_data(cache)
    before = stored(cache)
    mine = getattr(cache, name)(*args, **kwargs)
    if name == "sscan_iter":
        assert isinstance(mine, Iterator)
        mine = list(mine)
    after = stored(cache)

    flush(cache)
    fill_twin_data(cache)
    assert stored(cache) == before
    theirs = run_twin(cache, name, args, kwargs)
    assert theirs == mine
    assert type(theirs) is type(mine)
    # The same writes too (or none).
    assert stored(cache) == after
