"""Prove that the real-Redis test infrastructure in ``tests/redis_servers.py`` works.

No Django here: run with ``python -m pytest -p no:django tests/test_redis_servers.py``.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster as ClusterClient
from redis.retry import Retry
from redis.sentinel import Sentinel

from tests.conftest import wait_until
from tests.redis_servers import (
    HOST,
    RedisCluster,
    RedisSentinelGroup,
    RedisServer,
    RedisServerError,
    free_port,
)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture
def sentinel_group() -> Iterator[RedisSentinelGroup]:
    with RedisSentinelGroup() as group:
        yield group


def cluster_client(cluster: RedisCluster) -> ClusterClient:
    """A redis-py cluster client that discovers the cluster from its startup nodes."""
    return ClusterClient(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster.startup_nodes]
    )


def test_free_port_never_repeats_and_reserves_cluster_bus() -> None:
    ports = [free_port() for _ in range(50)]
    bus_users = [free_port(cluster_bus=True) for _ in range(10)]
    handed_out = ports + bus_users
    assert len(set(handed_out)) == len(handed_out)
    assert all(port + 10000 <= 65535 for port in bus_users)
    assert not {port + 10000 for port in bus_users} & set(handed_out)


def test_server_set_get_and_restart_on_same_port(server: RedisServer) -> None:
    assert server.url == f"redis://{HOST}:{server.port}/0"
    client = server.client()
    assert client.set("key", "value")
    assert client.get("key") == b"value"

    port, pid = server.port, server.pid
    server.restart()

    assert (server.port, server.is_running) == (port, True)
    assert server.pid != pid
    # The old client reconnects to the same address; nothing was persisted.
    assert client.get("key") is None
    assert redis.Redis.from_url(server.url).ping()
    client.close()


def test_stop_then_start_and_kill(server: RedisServer) -> None:
    server.stop()
    assert not server.is_running
    with pytest.raises(redis.ConnectionError):
        server.client(retry=Retry(NoBackoff(), 0)).ping()
    server.start()
    assert server.client().ping()

    server.kill(signal.SIGKILL)
    assert not server.is_running
    server.start()
    assert server.client().ping()


def test_failed_start_raises_with_log_tail_and_cleans_up() -> None:
    broken = RedisServer(["--no-such-option", "1"])
    with pytest.raises(RedisServerError, match="no-such-option"), broken:
        pass
    assert not broken.is_running
    assert not broken.dir.exists()


def test_commandstats_counts_exactly_one_get(server: RedisServer) -> None:
    client = server.client()
    client.ping()  # connect (and handshake) before the first snapshot
    before = server.commandstats()
    client.get("missing")
    client.client_setname("stats-test")
    after = server.commandstats()

    assert after.get("get", 0) - before.get("get", 0) == 1
    assert after.get("set", 0) == before.get("set", 0) == 0
    assert after["client|setname"] - before.get("client|setname", 0) == 1


@pytest.mark.slow
def test_cluster_spreads_100_keys_over_three_primaries(cluster: RedisCluster) -> None:
    primaries = cluster.primaries()
    assert len(primaries) == 3
    assert len(cluster.replicas()) == 3
    assert cluster.location == ",".join(f"redis://{HOST}:{p.port}" for p in primaries)

    client = cluster_client(cluster)
    before = cluster.commandstats()
    keys = [f"key:{i}" for i in range(100)]
    for key in keys:
        client.set(key, key.upper())

    assert [client.get(key) for key in keys] == [key.upper().encode() for key in keys]
    owners = {cluster.primary_for_key(key).port for key in keys}
    assert owners == {p.port for p in primaries}
    assert sum(p.client().dbsize() for p in primaries) == 100
    # Summed over all nodes: each SET ran on its primary and again on the replica (which
    # applies it asynchronously, so wait for replication to catch up).
    wait_until(
        lambda: cluster.commandstats()["set"] - before.get("set", 0) == 200,
        timeout=10,
        what="every SET replicated",
    )
    assert cluster.commandstats()["set"] - before.get("set", 0) == 200
    client.close()


@pytest.mark.slow
def test_cluster_failover_after_primary_is_killed(cluster: RedisCluster) -> None:
    client = cluster_client(cluster)
    client.set("survivor", "1")
    victim = cluster.primary_for_key("survivor")
    replicas_before = set(cluster.replicas())

    victim.kill(signal.SIGKILL)
    promoted = cluster.wait_for_failover(victim)

    assert promoted is not victim
    assert promoted in replicas_before
    assert cluster.primary_for_key("survivor") is promoted
    assert victim not in cluster.primaries()
    assert promoted.info("replication")["role"] == "master"
    # Replication is asynchronous: the write may legitimately have been lost with the victim.
    if client.get("survivor") is None:
        client.set("survivor", "1")
    assert client.get("survivor") == b"1"
    assert promoted.client().get("survivor") == b"1"
    client.close()


@pytest.mark.slow
def test_sentinel_failover_after_primary_is_killed(sentinel_group: RedisSentinelGroup) -> None:
    old_primary = sentinel_group.primary
    sentinel = Sentinel(sentinel_group.sentinels, socket_timeout=1)
    assert sentinel.discover_master(sentinel_group.service_name) == old_primary.address
    primary_client = sentinel.master_for(sentinel_group.service_name, socket_timeout=1)
    assert primary_client.set("before", "1")
    assert sentinel_group.commandstats()["set"] == 1

    old_primary.kill(signal.SIGKILL)
    new_primary = sentinel_group.wait_for_failover()

    assert new_primary is not old_primary
    assert sentinel_group.primary is new_primary
    assert sentinel_group.current_primary_address() == new_primary.address
    assert primary_client.set("after", "2")
    assert new_primary.client().get("after") == b"2"
    primary_client.close()
