"""Prefix and tag invalidation on the backend, on single, Sentinel and Cluster."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.conftest import Target


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
    assert cache.invalidate_prefix("p") == 4
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
    cache.set("campaigns:0", "v", tags=["t1"])  # this process has recorded the slots it uses
    delta = target.count_commands(lambda: cache.set("campaigns:1", "v", tags=["t1"]))
    # One script: the SET and a ZADD per index (root "campaigns", tag "t1"); on a Cluster
    # the slot of "campaigns:1" may be new to this process: its records first (a script
    # each for the root's and the tag's, in one pipeline).
    assert delta.pop("evalsha") in ((1, 2, 3) if target.mode == "cluster" else (1,))
    assert {"set", "zadd"} <= set(delta)
    assert delta["zadd"] in ((2, 4) if target.mode == "cluster" else (2,))  # + replicas
    assert "scan" not in delta and "keys" not in delta


def test_invalidation_cost_does_not_depend_on_the_keyspace(target: Target) -> None:
    cache = target.cache
    cache.set_many({f"bulk{i}": i for i in range(300)})  # unrelated keys
    cache.set_many({f"hot:{i}": i for i in range(5)})
    delta = target.count_commands(lambda: cache.invalidate_prefix("hot"))
    assert "scan" not in delta and "keys" not in delta
    # Drain scripts that delete just those 5 keys.
    assert delta.get("evalsha", 0) + delta.get("eval", 0) >= 1
    assert delta.get("del", 0) <= (10 if target.mode == "cluster" else 5)  # + replicas
    assert cache.get("bulk7") == 7


def test_index_bookkeeping_expires_with_its_members(cache: Any) -> None:
    cache.set("short:1", "x", timeout=1, tags=["short-tag"])
    client = raw(cache)
    index_keys = [k for k in client.scan_iter(match="*dcc*") if b"short" in k]
    # the root's and the tag's index shards (on a Cluster, also their slot records)
    assert len(index_keys) == (4 if cache.cluster else 2)
    assert all(client.pttl(k) > 0 for k in index_keys)
    shards = [k for k in index_keys if b":i" in k]
    assert all(client.pttl(k) <= 1250 for k in shards)  # the entry's life and a quarter
    time.sleep(1.4)
    assert all(not client.exists(k) for k in shards)


def test_async_invalidation(cache: Any) -> None:
    cache.set("async:1", 1, tags=["at"])
    cache.set("async:2", 2)

    async def run() -> tuple[int, int]:
        return await cache.ainvalidate_tags("at"), await cache.ainvalidate_prefix("async")

    assert asyncio.run(run()) == (1, 1)


def test_async_tracked_writes_without_tags_are_indexed(cache: Any) -> None:
    """The commonest tracked writes (one root, no tags), which a sync client sends as
    transactions, from an async client: indexed all the same."""
    batch = {f"plain:{n}": n for n in range(20)}

    async def run() -> tuple[bool, list[Any], int]:
        stored = await cache.aset("plain:one", 1)
        failed = await cache.aset_many(batch)
        return stored, failed, await cache.ainvalidate_prefix("plain")

    assert asyncio.run(run()) == (True, [], len(batch) + 1)
    assert cache.get_many([*batch, "plain:one"]) == {}


def test_empty_prefixes_or_parts_are_refused(cache: Any) -> None:
    for prefix in ("", ":", "campaigns:", ":campaigns", "a::b"):
        with pytest.raises(ValueError):
            cache.invalidate_prefix(prefix)
    with pytest.raises(ValueError):  # checked before anything is deleted
        cache.invalidate_prefix("ok", "bad:")


def test_any_depth_is_tracked(cache: Any) -> None:
    cache.set("a:b:c:d:e:f", 1)
    cache.set("a:b:c:d:x", 2)
    assert cache.invalidate_prefix("a:b:c:d:e") == 1
    assert cache.get("a:b:c:d:x") == 2
    assert cache.invalidate_prefix("a") == 1
