"""Invalidation as a user calls it: every natural call form works or fails loudly, the
bookkeeping stays out of sight, ``clear()`` keeps to its alias, and tracking needs no
declaration (or is turned off and scans instead). On a single server and a Cluster."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.cache import caches

from django_creator_cache.backend import indexes
from django_creator_cache.backend.ops import browse
from django_creator_cache.decorators import cached
from django_creator_cache.invalidation import track_prefixes
from tests.conftest import cluster_entry, flush, single_entry
from tests.processes import process


@pytest.fixture(params=["single", "cluster"])
def servers(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("redis_server" if request.param == "single" else "redis_cluster")


def entry_for(servers: Any, **options: Any) -> dict[str, Any]:
    cluster = not hasattr(servers, "url")
    return cluster_entry(servers, **options) if cluster else single_entry(servers, **options)


@pytest.fixture
def cache(servers: Any, settings: Any) -> Iterator[Any]:
    settings.CACHES = {"default": entry_for(servers)}
    cache = caches["default"]
    flush(cache)
    yield cache
    flush(cache)


def every_key(cache: Any) -> list[str]:
    client = cache.get_client()
    return sorted(k.decode() for k in client.scan_iter(match="*", count=1000))


# -- tags --------------------------------------------------------------------------------------


def test_a_tag_given_as_a_string_is_one_tag_everywhere(cache: Any) -> None:
    cache.set("a:1", 1, tags="user")
    cache.add("a:2", 2, tags="user")
    cache.set_many({"a:3": 3, "b": 4}, tags="user")
    assert cache.get_or_set("c", lambda: 5, tags="user") == 5

    @cached(prefix="forms-cached", tags="user")
    def compute(x: int) -> int:
        return x * 10

    assert compute(1) == 10
    assert compute.tags_for(1) == ("user",)
    # no tag per character was created
    assert cache.invalidate_tags("u", "s", "e", "r") == 0
    assert cache.invalidate_tags("user") == 6
    assert cache.get_many(["a:1", "a:2", "a:3", "b", "c"]) == {}


def test_invalidate_tags_takes_names_or_lists(cache: Any) -> None:
    for tag in ("x", "y", "z"):
        cache.set(f"k:{tag}", tag, tags=[tag])
    assert cache.invalidate_tags(["x", "y"]) == 2
    assert cache.get("k:z") == "z"
    cache.set("k:x", "x", tags=("x",))
    assert cache.invalidate_tags("x", ["z"]) == 2
    assert cache.invalidate_tags() == 0
    with pytest.raises(ValueError):
        cache.set("k", 1, tags=["ok", ""])


def test_several_prefixes_in_one_call(cache: Any) -> None:
    cache.set_many({"p1:a": 1, "p1:b:c": 2, "p2:a": 3, "p3:a": 4})
    assert cache.invalidate_prefix("p1", "p2") == 3
    assert cache.get("p3:a") == 4
    assert cache.get("p2:a") is None


def test_versions_long_keys_and_odd_keys_are_all_covered(cache: Any) -> None:
    long_key = "long:" + "x" * 400  # hashed to fit: the index keeps the full Redis key
    cache.set(long_key, 1)
    cache.set("long:v", 2, version=7)
    cache.set("long:nul\0key", 3)
    cache.set("long:ünï", 4, tags=["ü"])
    cache.set("long", 5)  # the root itself is not under it
    assert cache.invalidate_prefix("long") == 4
    assert cache.get("long") == 5
    assert cache.get(long_key) is None
    assert cache.get("long:v", version=7) is None


# -- keys ----------------------------------------------------------------------------------------


def test_user_all_matches_the_keys_user_builds(cache: Any) -> None:
    km = cache.keys_manager
    cache.set(km.user(42, "profile"), "p")
    cache.set(km.user(42, "feed", "page-1"), "f")
    cache.set(km.user(421, "profile"), "q")
    assert sorted(cache.keys(km.user_all(42))) == [
        km.user(42, "feed", "page-1"),
        km.user(42, "profile"),
    ]
    assert cache.delete_pattern(km.user_all(42)) == 2
    assert cache.get(km.user(421, "profile")) == "q"


def test_bookkeeping_keys_stay_out_of_sight(cache: Any) -> None:
    cache.set_many({"seen:1": 1, "seen:2": 2}, tags=["t"])
    assert any(k.startswith("dcc:") for k in every_key(cache))  # the indexes exist
    assert sorted(cache.keys("*")) == ["seen:1", "seen:2"]
    assert sorted(cache.iter_keys("*")) == ["seen:1", "seen:2"]
    page = cache.browse_keys("*", count=500)
    assert sorted(info.key for info in page.keys) == [
        cache.make_key("seen:1"),
        cache.make_key("seen:2"),
    ]
    assert cache.delete_pattern("*") == 2


def test_clear_deletes_exactly_this_aliass_keys(servers: Any, settings: Any) -> None:
    settings.CACHES = {
        "app": {**entry_for(servers), "KEY_PREFIX": "app"},
        "tenant": {**entry_for(servers), "KEY_PREFIX": "app:tenant2"},
        "glob": {**entry_for(servers), "KEY_PREFIX": "a*p"},
    }
    app, tenant, glob = caches["app"], caches["tenant"], caches["glob"]
    flush(app)
    for each in (app, tenant, glob):
        each.set("k", 1)
        each.set("root:k", 2, tags=["t"])
        each.set("k", 3, version=2)
    assert app.clear() is True
    assert all(not k.startswith("app:1:") and not k.startswith("app:dcc:") for k in every_key(app))
    assert app.get("k") is None
    assert tenant.get("k") == 1 and tenant.get("root:k") == 2 and tenant.get("k", version=2) == 3
    assert glob.get("k") == 1
    assert tenant.invalidate_prefix("root") == 1  # its indexes survived too
    assert glob.clear() is True
    assert tenant.get("k") == 1
    assert every_key(app) and all(k.startswith("app:tenant2:") for k in every_key(app))
    flush(app)


def test_the_key_browser_shows_and_changes_exactly_this_aliass_keys(
    servers: Any, settings: Any
) -> None:
    """The listing hid another alias's keys (``app`` and ``app:tenant2``) and the index
    bookkeeping; a key page, a delete or an expiry reached by its name must not either."""
    settings.CACHES = {
        "app": {**entry_for(servers), "KEY_PREFIX": "app"},
        "tenant": {**entry_for(servers), "KEY_PREFIX": "app:tenant2"},
    }
    app, tenant = caches["app"], caches["tenant"]
    flush(app)
    tenant.set("secret", "theirs")
    app.set("news:1", "ours")
    theirs, ours = tenant.make_key("secret"), app.make_key("news:1")
    bookkeeping = next(k for k in every_key(app) if k.startswith("app:dcc:"))
    steps = (
        lambda key: browse.inspect_key(app, key),
        lambda key: browse.delete_key(app, key),
        lambda key: browse.expire_key(app, key, 5),
    )
    for key in (theirs, bookkeeping):
        for step in steps:
            with pytest.raises(ValueError, match="not a key of this alias"):
                app.run(step(key), "browse")
    assert tenant.get("secret") == "theirs" and tenant.ttl("secret") > 5  # not re-timed
    assert app.run(browse.inspect_key(app, ours), "browse") is not None
    assert app.run(browse.delete_key(app, ours), "browse") is True
    flush(app)


# -- tracking needs no declaration; opting out scans -------------------------------------------


def _write_in_another_process(keys: list[str]) -> None:
    cache = caches["default"]
    for key in keys:
        assert cache.set(key, "v")
    assert cache.set_many({f"{key}:many": "m" for key in keys}) == []


def test_a_prefix_nobody_declared_written_by_another_process_is_invalidated(cache: Any) -> None:
    worker = process(_write_in_another_process, ["undeclared:1", "undeclared:deep:2"])
    worker.start()
    worker.join(60)
    assert worker.exitcode == 0
    assert cache.get("undeclared:deep:2") == "v"
    assert cache.invalidate_prefix("undeclared:deep") == 2
    assert cache.invalidate_prefix("undeclared") == 2
    assert [k for k in every_key(cache) if "undeclared" in k and not k.startswith("dcc:")] == []


def test_the_deprecated_declarations_are_accepted_and_harmless(servers: Any, settings: Any) -> None:
    settings.CACHES = {
        "default": entry_for(servers, INVALIDATION_PREFIXES=["only"], PREFIX_DEPTH=1)
    }
    cache = caches["default"]
    flush(cache)
    with pytest.warns(DeprecationWarning):
        track_prefixes("only")
    cache.set("other:a:b:c", 1)  # neither declared nor within the old depth
    assert cache.invalidate_prefix("other:a:b") == 1
    flush(cache)


def test_opting_out_of_tracking_scans_and_still_deletes(
    servers: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.CACHES = {
        "default": {**entry_for(servers, TRACK_WRITES=False), "KEY_PREFIX": "site"},
        "longer": {**entry_for(servers), "KEY_PREFIX": "site:2"},
    }
    cache, longer = caches["default"], caches["longer"]
    flush(cache)
    before = servers.commandstats().get("zadd", 0)
    cache.set("news:1", 1)
    cache.set("news:deep:2", 2, version=3)
    cache.set("x:news:3", 3)  # "news" is not its root
    cache.set("newsy:4", 4)
    assert servers.commandstats().get("zadd", 0) == before  # plain SETs, no index
    longer.set("1:news:5", 5)  # another alias whose keys look like version 1's
    assert not cache.tracks_prefix("news")
    with caplog.at_level(logging.WARNING, "django_creator_cache"):
        assert cache.invalidate_prefix("news") == 2
    assert "scanned the keyspace" in caplog.text
    assert cache.get("x:news:3") == 3 and cache.get("newsy:4") == 4
    assert longer.get("1:news:5") == 5
    flush(cache)


def test_expired_members_are_pruned_by_later_writes(redis_server: Any, settings: Any) -> None:
    settings.CACHES = {"default": single_entry(redis_server)}
    cache = caches["default"]
    flush(cache)
    cache.set_many({f"prune:old{i}": i for i in range(300)}, timeout=0.05)
    shard = indexes.names(cache).shard(indexes.ROOT_SHARD, "prune", None)
    client = cache.get_client()
    assert client.zcard(shard) == 300 + 1  # and the shard's placeholder

    time.sleep(0.1)
    for i in range(400):
        cache.set(f"prune:new{i}", i)
    # 400 writes, one in 16 sweeping 32 members from a random rank: most dead ones went.
    assert client.zcard(shard) < 400 + 100
    assert cache.invalidate_prefix("prune") == 400


# -- a flush behind the package's back -------------------------------------------------------


@pytest.mark.parametrize("side", ["sync", "async"])
def test_a_write_after_an_outside_flush_is_still_invalidated(cache: Any, side: str) -> None:
    """The process remembers the indexes it wrote (their shards, on a Cluster their slot
    records) for a while; a FLUSHALL done with another client empties them under it. The
    next write finds its shard gone and writes what the invalidation reads again."""
    for key in ("heal:1", "heal:2", "heal:3"):
        cache.set(key, 1, timeout=600, tags="healed")
    flush(cache)
    if side == "sync":
        cache.set("heal:4", 2, timeout=600)
        cache.set("heal:1", 2, timeout=600, tags="healed")
    else:

        async def write() -> None:
            await cache.aset("heal:4", 2, timeout=600)
            await cache.aset("heal:1", 2, timeout=600, tags="healed")

        asyncio.run(write())
    n = indexes.names(cache)
    client = cache.get_client()
    for key in ("heal:4", "heal:1"):  # the shards made anew got their expiry
        slot = indexes.slot_of(cache.make_key(key).encode()) if n.sharded() else None
        assert 500_000 < client.pttl(n.shard(indexes.ROOT_SHARD, "heal", slot)) <= 750_000
    assert cache.invalidate_prefix("heal") == 2
    assert cache.get("heal:1") is None and cache.get("heal:4") is None
    cache.set("heal:1", 3, timeout=600, tags="healed")
    assert cache.invalidate_tags("healed") == 1
    assert cache.get("heal:1") is None


def test_an_entry_given_a_longer_life_stays_invalidatable(cache: Any) -> None:
    """A write makes its root's index live a quarter past the entry; touching the entry to
    a longer life (or none) takes the index along, else the index expired first and the
    entry escaped every later invalidation."""
    names = ("touch", "expire", "pexpire", "persist", "at", "pat", "browser")
    keys = [f"life:{name}" for name in names]
    for key in keys:
        cache.set(key, 1, timeout=1)
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert cache.touch("life:touch", None)
    assert cache.expire("life:expire", 60)
    assert cache.pexpire("life:pexpire", 60_000)
    assert cache.persist("life:persist")
    assert cache.expire_at("life:at", later)
    assert cache.pexpire_at("life:pat", later)
    # the admin key browser's "expire" takes a full Redis key
    full = cache.make_key("life:browser")
    assert cache.run(browse.expire_key(cache, full, None), "expire_key") is True
    time.sleep(1.5)  # the writes' index life (1.25 s) is over
    assert cache.get_many(keys) == dict.fromkeys(keys, 1)
    assert cache.invalidate_prefix("life") == len(keys)
    assert cache.get_many(keys) == {}
