"""A tracked write whose slot moved to another primary behind the client's back.

Tracked writes on a Cluster go as MULTI/EXEC transactions written straight to each
node (``SlotTxs``). A transaction sent to a node that no longer serves its slot is
refused while queued (MOVED) and never runs: it goes again through redis-py, which
follows the redirection and learns the new owner. These tests move a real slot between
the primaries of their own Cluster, then write: the entry lands on the new owner, in its
index, and one invalidation removes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches

from django_creator_cache.backend.indexes import slot_of
from django_creator_cache.backend.ops import indexing
from tests.conftest import cluster_entry
from tests.redis_servers import RedisCluster, RedisServer


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as own:  # slots are moved: no other test shares it
        yield own


def _serving(node: RedisServer, slot: int) -> int:
    """The port of the primary ``node`` believes serves ``slot``."""
    table = node.client().execute_command("CLUSTER", "SLOTS")
    return next(int(row[2][1]) for row in table if row[0] <= slot <= row[1])


def _move(cluster: RedisCluster, slot: int) -> tuple[RedisServer, RedisServer]:
    """Move the empty ``slot`` from its primary to another; (old owner, new owner)."""
    primaries = cluster.primaries()
    ids = {node.port: node.client().execute_command("CLUSTER", "MYID") for node in primaries}
    port = _serving(primaries[0], slot)
    source = next(node for node in primaries if node.port == port)
    target = next(node for node in primaries if node.port != port)
    assert source.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    target.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.port])
    source.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.port])
    for node in (source, target, *(n for n in primaries if n not in (source, target))):
        node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target.port])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        views = [_serving(node, slot) for node in cluster.primaries()]
        if set(views) == {target.port}:
            return source, target
        time.sleep(0.05)
    raise AssertionError(f"slot {slot} not seen on its new owner by every primary")


def _client_owner(cache: Any, slot: int) -> int:
    """The port the cache's client believes serves ``slot``."""
    return int(cache.get_client().nodes_manager.get_node_from_slot(slot).port)


@pytest.mark.parametrize("many", [False, True], ids=["set", "set_many"])
def test_a_write_to_a_moved_slot_lands_on_its_new_owner_indexed(
    cluster: RedisCluster, settings: Any, many: bool
) -> None:
    settings.CACHES = {"default": cluster_entry(cluster)}
    cache = caches["default"]
    others = {f"moved:other{n}": n for n in range(30)}
    cache.set_many(others)  # the client's slot map, its connections, the slots' records
    full = cache.make_key("moved:1")
    slot = slot_of(full.encode())
    assert all(slot_of(cache.make_key(key).encode()) != slot for key in others)
    source, target = _move(cluster, slot)
    assert _client_owner(cache, slot) == source.port  # the client has not seen the move

    if many:
        assert cache.set_many({"moved:1": "v", **{k: -v for k, v in others.items()}}) == []
    else:
        assert cache.set("moved:1", "v") is True

    assert target.client().exists(full) == 1
    assert _client_owner(cache, slot) == target.port  # redis-py followed the redirection
    assert cache.get("moved:1") == "v"
    assert cache.invalidate_prefix("moved") == len(others) + 1
    assert cache.get("moved:1") is None
    assert cache.get_many(list(others)) == {}


@pytest.mark.parametrize("sweep", [-1.0, 0.5], ids=["transactions", "sweeping-scripts"])
def test_a_slot_missing_from_the_clients_map_is_looked_up_again(
    cluster: RedisCluster, settings: Any, monkeypatch: pytest.MonkeyPatch, sweep: float
) -> None:
    """The client's slot map lacks the entry's slot (a topology change half seen): the
    map is read again and the write lands, indexed, whether the batch goes as
    transactions or (one write in 16 sweeps its index) as scripts."""
    monkeypatch.setattr(indexing, "sweep_rank", lambda: sweep)
    settings.CACHES = {"default": cluster_entry(cluster)}
    cache = caches["default"]
    cache.set_many({f"gap:other{n}": n for n in range(10)})
    slot = slot_of(cache.make_key("gap:1").encode())
    cache.get_client().nodes_manager.slots_cache.pop(slot)
    assert cache.set_many({"gap:1": "v", "gap:2": "w"}) == []
    assert cache.get_client().nodes_manager.slots_cache.get(slot)  # read again
    assert cache.get("gap:1") == "v"
    assert cache.invalidate_prefix("gap") == 12
