"""Prefix and tag invalidation on the backend, on single, Sentinel and Cluster."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from django_creator_cache.backend.keying import _warned_roots
from django_creator_cache.invalidation import index, track_prefixes
from tests.conftest import Target

ROOTS = {"campaigns", "dashboard", "p", "q", "lists", "forever", "async", "hot", "short", "a"}


@pytest.fixture(autouse=True)
def _tracked_roots() -> Any:
    """Declare the prefixes these tests invalidate, as an app's ready() would."""
    track_prefixes(*ROOTS)
    yield
    index.declared_roots.difference_update(ROOTS)


def raw(cache: Any) -> Any:
    return cache.get_client()


def test_prefix_invalidation_covers_every_level_and_nothing_else(cache: Any) -> None:
    cache.set("campaigns:1", "a")
    cache.set("campaigns:user-1:list", "b")
    cache.set("campaigns:user-2:list", "c")
    cache.set("campaignsX:1", "other")  # shares the letters, not the prefix
    cache.set("dashboard:main", "d")
    assert cache.invalidate_prefix("campaigns:user-1") == 1
    assert cache.get("campaigns:user-1:list") is None
    assert cache.get("campaigns:user-2:list") == "c"
    assert cache.invalidate_prefix("campaigns") == 2
    assert cache.get_many(["campaigns:1", "campaigns:user-2:list"]) == {}
    assert cache.get("campaignsX:1") == "other"
    assert cache.get("dashboard:main") == "d"
    assert cache.invalidate_prefix("campaigns") == 0


def test_prefix_invalidation_covers_every_version_and_set_many(cache: Any) -> None:
    cache.set("p:k", 1, version=1)
    cache.set("p:k", 2, version=2)
    cache.set_many({"p:m1": 1, "p:m2": 2, "q:m3": 3})
    assert cache.invalidate_prefix("p:") == 4  # a trailing separator is allowed
    assert cache.get("p:k", version=2) is None
    assert cache.get("q:m3") == 3


def test_tags_invalidate_across_prefixes(cache: Any) -> None:
    cache.set("campaigns:42", "row", tags=["campaign:42"])
    cache.set("dashboard:main", "page", tags=["campaign:42", "dashboard"])
    cache.set_many({"lists:a": 1, "lists:b": 2}, tags=["campaign:7"])
    cache.add("added", "x", tags=["campaign:42"])
    cache.set("untagged", "y")
    assert cache.invalidate_tags("campaign:42") == 3
    assert cache.get("campaigns:42") is None
    assert cache.get("dashboard:main") is None
    assert cache.get("added") is None
    assert cache.get_many(["lists:a", "lists:b"]) == {"lists:a": 1, "lists:b": 2}
    assert cache.invalidate_tags("campaign:7", "dashboard") == 2
    assert cache.get("lists:a") is None
    assert cache.get("untagged") == "y"


def test_entries_without_expiry_are_tracked_too(cache: Any) -> None:
    cache.set("forever:1", "x", timeout=None, tags=["t-forever"])
    cache.set("forever:2", "y", timeout=None)
    assert cache.invalidate_tags("t-forever") == 1
    assert cache.invalidate_prefix("forever") == 1
    assert cache.get("forever:2") is None


def test_read_is_one_get_and_a_tracked_write_one_pipeline(target: Target) -> None:
    cache = target.cache
    cache.set("warm:up", 1, tags=["w"])
    cache.get("warm:up")  # connections open, so HELLO is not counted below
    assert target.count_commands(lambda: cache.get("campaigns:1")) == {"get": 1}
    delta = target.count_commands(lambda: cache.set("campaigns:1", "v", tags=["t1"]))
    # SET plus, per index (prefix "campaigns", tag "t1"): ZADD and two PEXPIREAT.
    expected_min = {"set", "zadd", "pexpireat"}
    assert expected_min <= set(delta)
    assert "scan" not in delta and "keys" not in delta


def test_invalidation_cost_does_not_depend_on_the_keyspace(target: Target) -> None:
    cache = target.cache
    cache.set_many({f"bulk{i}": i for i in range(300)})  # unrelated keys
    cache.set_many({f"hot:{i}": i for i in range(5)})
    delta = target.count_commands(lambda: cache.invalidate_prefix("hot"))
    assert "scan" not in delta and "keys" not in delta
    # One script to take the index, then deletes of just those 5 keys.
    assert delta.get("evalsha", 0) + delta.get("eval", 0) >= 1
    assert cache.get("bulk7") == 7


def test_index_bookkeeping_expires_with_its_members(cache: Any) -> None:
    cache.set("short:1", "x", timeout=1, tags=["short-tag"])
    client = raw(cache)
    index_keys = list(client.scan_iter(match="*dcc*short*"))
    assert len(index_keys) == 2  # the prefix index and the tag index
    assert all(0 < client.pttl(k) <= 1000 for k in index_keys)
    time.sleep(1.2)
    assert all(not client.exists(k) for k in index_keys)


def test_async_invalidation(cache: Any) -> None:
    cache.set("async:1", 1, tags=["at"])
    cache.set("async:2", 2)

    async def run() -> tuple[int, int]:
        return await cache.ainvalidate_tags("at"), await cache.ainvalidate_prefix("async")

    assert asyncio.run(run()) == (1, 1)


def test_too_deep_or_empty_prefixes_are_refused(cache: Any) -> None:
    with pytest.raises(ValueError, match="PREFIX_DEPTH"):
        cache.invalidate_prefix("a:b:c:d:e")
    with pytest.raises(ValueError, match="clear"):
        cache.invalidate_prefix(":")


def test_prefix_tracking_can_be_turned_off(settings: Any, redis_server: Any) -> None:
    from django.core.cache import caches

    settings.CACHES = {
        "default": {
            "BACKEND": "django_creator_cache.backend.RedisCache",
            "LOCATION": redis_server.url,
            "KEY_PREFIX": "notrack",
            "OPTIONS": {"PREFIX_DEPTH": 0},
        }
    }
    cache = caches["default"]
    delta_before = redis_server.commandstats().get("zadd", 0)
    cache.set("a:b", 1)
    assert redis_server.commandstats().get("zadd", 0) == delta_before
    with pytest.raises(ValueError):
        cache.invalidate_prefix("a")
    cache.clear()


def test_untracked_prefixes_cost_a_plain_set_and_warn_on_invalidation(
    target: Target, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    cache = target.cache
    cache.get("warm")
    if target.mode == "cluster":
        # Replicas replay earlier tests' writes late: count on the primary of the key.
        node = request.getfixturevalue("redis_cluster").primary_for_key(
            cache.make_key("untracked:1")
        )
        before = node.commandstats()
        cache.set("untracked:1", "v")
        after = node.commandstats()
        delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
        delta.pop("info", None)
        delta.pop("hello", None)
    else:
        delta = target.count_commands(lambda: cache.set("untracked:1", "v"))
    assert delta == {"set": 1}
    _warned_roots.discard("untracked")
    assert cache.invalidate_prefix("untracked") == 0
    assert cache.invalidate_prefix("untracked") == 0
    warnings = [r for r in caplog.records if "not declared in this process" in r.getMessage()]
    assert len(warnings) == 1
    assert cache.get("untracked:1") == "v"


def test_a_prefix_declared_only_by_the_writers_is_still_invalidated(target: Target) -> None:
    cache = target.cache
    track_prefixes("writers-only")
    cache.set("writers-only:1", "v")
    index.declared_roots.discard("writers-only")  # the invalidating process never declared it
    assert cache.invalidate_prefix("writers-only") == 1
    assert cache.get("writers-only:1") is None


def test_tracking_every_prefix_by_option(settings: Any, redis_server: Any) -> None:
    from django.core.cache import caches

    settings.CACHES = {
        "default": {
            "BACKEND": "django_creator_cache.backend.RedisCache",
            "LOCATION": redis_server.url,
            "KEY_PREFIX": "trackall",
            "OPTIONS": {"INVALIDATION_PREFIXES": "*"},
        }
    }
    cache = caches["default"]
    cache.set("anything:1", 1)
    cache.set("anything:deeper:2", 2)
    assert cache.invalidate_prefix("anything") == 2
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "OPTIONS": {"INVALIDATION_PREFIXES": ["only"]}}
    }
    cache = caches["default"]
    cache.set("only:1", 1)
    assert cache.invalidate_prefix("only") == 1
    assert not cache.tracks_prefix("anything")
    cache.clear()
