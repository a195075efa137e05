"""``modes`` for redis.asyncio clients: what differs between one server and a Cluster.

The same split as the sync ``SingleMode``/``ClusterMode`` (MGET vs per-slot
MGET, one pipeline vs per-node pipelines, SCAN of one server vs every
primary), with awaitable I/O. Queuing on a pipeline is synchronous in
redis.asyncio too, so the code that fills pipelines (index registration,
``set_many``) is shared with the sync side.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from .local_tier import FETCH_MANY, FETCH_ONE
from .modes import DELETE_BATCH, split_fetched


class AsyncSingleMode:
    """One server: MGET, one pipeline, SCAN on that server."""

    name = "single"

    def __init__(self, client: Any) -> None:
        self.client: Any = client

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        result: list[bytes | None] = await self.client.execute_command("MGET", *keys)
        return result

    def pipeline(self) -> Any:
        return self.client.pipeline(transaction=False)

    async def fetch(self, key: str, with_ttl: bool = True) -> tuple[bytes | None, int | None]:
        """GET, with the key's PTTL in the same command when it is to be kept locally."""
        if not with_ttl:
            return await self.client.execute_command("GET", key), None
        raw, pttl = await self.client.execute_command("EVAL", FETCH_ONE, 1, key)
        return raw, pttl

    async def fetch_many(self, keys: Sequence[str]) -> tuple[list[Any], list[Any]]:
        """Values and PTTLs of ``keys`` in one round trip (non-strings read as misses)."""
        reply = await self.client.execute_command("EVAL", FETCH_MANY, len(keys), *keys)
        return split_fetched(reply)

    async def scan(self, pattern: str, count: int | None = None) -> AsyncIterator[bytes]:
        async for key in self.client.scan_iter(match=pattern, count=count):
            yield key

    async def keys(self, pattern: str) -> list[bytes]:
        result: list[bytes] = await self.client.keys(pattern)
        return result

    async def delete_keys(self, keys: Sequence[bytes | str]) -> int:
        """Delete many keys in as few round trips as possible."""
        deleted = 0
        for start in range(0, len(keys), DELETE_BATCH):
            deleted += int(await self.client.delete(*keys[start : start + DELETE_BATCH]))
        return deleted

    async def flush(self) -> None:
        await self.client.flushdb()


class AsyncClusterMode(AsyncSingleMode):
    """A Redis Cluster: per-slot MGET, per-node pipelines, scans of every primary."""

    name = "cluster"

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        result: list[bytes | None] = await self.client.mget_nonatomic(list(keys))
        return result

    def pipeline(self) -> Any:
        return self.client.pipeline()

    async def fetch_many(self, keys: Sequence[str]) -> tuple[list[Any], list[Any]]:
        """One script per key (keys of a script share a slot), one pipeline per node."""
        pipe = self.client.pipeline()
        for key in keys:
            pipe.execute_command("EVAL", FETCH_MANY, 1, key)
        replies = await pipe.execute()
        return [r[0] for r in replies], [r[1] for r in replies]

    async def keys(self, pattern: str) -> list[bytes]:
        result: list[bytes] = await self.client.keys(
            pattern, target_nodes=AsyncRedisCluster.PRIMARIES
        )
        return result

    async def flush(self) -> None:
        await self.client.flushdb(target_nodes=AsyncRedisCluster.PRIMARIES)


def async_mode_for(client: Any) -> AsyncSingleMode:
    if isinstance(client, AsyncRedisCluster):
        return AsyncClusterMode(client)
    return AsyncSingleMode(client)
