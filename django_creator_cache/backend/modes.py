"""What differs between a single Redis (or Sentinel primary) and a Cluster.

Single-key commands are the same everywhere and are issued by the backend
directly. Multi-key reads, pipelines, key scans and server-wide commands differ:
on a Cluster they must cover every primary and split keys by slot.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.sentinel import SentinelConnectionPool

from .connection import RedisClientType
from .local_tier import FETCH_MANY, FETCH_ONE

DELETE_BATCH = 500


def split_fetched(reply: list[Any]) -> tuple[list[Any], list[Any]]:
    """``FETCH_MANY``'s reply (values, then PTTLs) as (values, pttls)."""
    half = len(reply) // 2
    return reply[:half], reply[half:]


class SingleMode:
    """One server: MGET, one pipeline, SCAN on that server."""

    name = "single"

    def __init__(self, client: RedisClientType) -> None:
        # redis-py is only partly annotated, and Redis and RedisCluster differ.
        self.client: Any = client

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        result: list[bytes | None] = self.client.execute_command("MGET", *keys)
        return result

    def pipeline(self) -> Any:
        return self.client.pipeline(transaction=False)

    def fetch(self, key: str, with_ttl: bool = True) -> tuple[bytes | None, int | None]:
        """GET, with the key's PTTL in the same command when it is to be kept locally."""
        if not with_ttl:
            return self.client.execute_command("GET", key), None
        raw, pttl = self.client.execute_command("EVAL", FETCH_ONE, 1, key)
        return raw, pttl

    def fetch_many(self, keys: Sequence[str]) -> tuple[list[Any], list[Any]]:
        """Values and PTTLs of ``keys`` in one round trip (non-strings read as misses)."""
        return split_fetched(self.client.execute_command("EVAL", FETCH_MANY, len(keys), *keys))

    def scan(self, pattern: str, count: int | None = None) -> Iterator[bytes]:
        yield from self.client.scan_iter(match=pattern, count=count)

    def keys(self, pattern: str) -> list[bytes]:
        result: list[bytes] = self.client.keys(pattern)
        return result

    def delete_keys(self, keys: Sequence[bytes | str]) -> int:
        """Delete many keys in as few round trips as possible."""
        deleted = 0
        for start in range(0, len(keys), DELETE_BATCH):
            deleted += int(self.client.delete(*keys[start : start + DELETE_BATCH]))
        return deleted

    def flush(self) -> None:
        self.client.flushdb()

    def nodes(self) -> list[tuple[str, redis.Redis]]:
        """(address, client) of every primary, for INFO and DBSIZE."""
        pool = self.client.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            # connection_kwargs hold the service name; ask the sentinels for the primary.
            host, port = pool.get_master_address()
            address = f"{host}:{port}"
        else:
            kwargs = pool.connection_kwargs
            address = str(kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}")
        assert isinstance(self.client, redis.Redis)
        return [(address, self.client)]


class ClusterMode(SingleMode):
    """A Redis Cluster: per-slot MGET, per-node pipelines, scans of every primary."""

    name = "cluster"

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        result: list[bytes | None] = self.client.mget_nonatomic(list(keys))
        return result

    def pipeline(self) -> Any:
        return self.client.pipeline()

    def fetch_many(self, keys: Sequence[str]) -> tuple[list[Any], list[Any]]:
        """One script per key (keys of a script share a slot), one pipeline per node."""
        pipe = self.client.pipeline()
        for key in keys:
            pipe.execute_command("EVAL", FETCH_MANY, 1, key)
        replies = pipe.execute()
        return [r[0] for r in replies], [r[1] for r in replies]

    def keys(self, pattern: str) -> list[bytes]:
        result: list[bytes] = self.client.keys(pattern, target_nodes=RedisCluster.PRIMARIES)
        return result

    def flush(self) -> None:
        self.client.flushdb(target_nodes=RedisCluster.PRIMARIES)

    def nodes(self) -> list[tuple[str, redis.Redis]]:
        return [
            (node.name, node.redis_connection)
            for node in self.client.get_primaries()
            if node.redis_connection is not None
        ]


def mode_for(client: RedisClientType) -> SingleMode:
    return ClusterMode(client) if isinstance(client, RedisCluster) else SingleMode(client)
