"""The async client follows a Sentinel failover, like the sync one (``test_failover.py``).

A primary demoted under the async client's idle connection answers with READONLY;
redis.asyncio's retry must reconnect through the sentinels to the new primary
(``AsyncSentinelPrimaryConnection``), not to the address the connection had.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django_creator_cache.backend import RedisCache
from tests.conftest import wait_until
from tests.redis_servers import RedisSentinelGroup, RedisServer


def _stored(server: RedisServer, cache: RedisCache, key: str) -> Any:
    with server.client() as client:
        return client.get(cache.make_key(key))


def test_async_writes_follow_a_demoted_primary_to_the_new_one() -> None:
    with RedisSentinelGroup() as group:
        options = {
            "MODE": "sentinel",
            "SENTINELS": group.sentinels,
            "ALIAS": "async-failover",
            "SOCKET_TIMEOUT": 1.0,
            "RETRY_ATTEMPTS": 2,
            "RETRY_DELAY": 0.05,
        }
        cache = RedisCache(f"redis://{group.service_name}/0", {"OPTIONS": options})
        old, new = group.primary, group.replica

        async def scenario() -> None:
            assert await cache.aset("swap", 0) is True  # an idle pooled connection to `old`
            # Swap the roles behind the idle connection (no client is disconnected).
            with new.client() as admin:
                admin.execute_command("REPLICAOF", "NO", "ONE")
            with old.client() as admin:
                admin.execute_command("REPLICAOF", new.host, str(new.port))
            wait_until(
                lambda: old.info("replication").get("master_link_status") == "up", 10, "resync"
            )
            for sentinel in group.sentinel_servers:
                with sentinel.client(socket_timeout=2) as admin:
                    admin.execute_command("SENTINEL", "REMOVE", group.service_name)
                    admin.execute_command(
                        "SENTINEL", "MONITOR", group.service_name, new.host, new.port, group.quorum
                    )
            assert group.current_primary_address() == new.address
            errors_before = cache.runtime.counters.errors
            # The pooled connection still points at `old`, now a replica: READONLY, then a
            # reconnect through the sentinels, inside one call.
            assert await cache.aset("swap", 1) is True
            assert await cache.aget("swap") == 1
            assert cache.runtime.counters.errors == errors_before

        asyncio.run(scenario())
        assert _stored(new, cache, "swap") == b"1"
