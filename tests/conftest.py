"""Fixtures: real redis-server processes, and the backend configured on them.

Servers are started once per session (a cluster takes a few seconds); each
test gets the backend on a clean database. Tests that stop or kill servers
start their own (``own_redis_server``) so the shared ones stay healthy.

``DCC_TEST_LOCAL_TIER=1`` in the environment turns the local read tier on in
every entry these helpers build (``tests/test_local_tier.py`` runs the
conformance modules that way in a subprocess); each tier is ready (tracking
confirmed) before the backend is used, and every test starts with none.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.cache import caches

from django_creator_cache.backend import local_tier
from django_creator_cache.backend.circuit import _breakers
from django_creator_cache.backend.runtime import _fallbacks
from tests.redis_servers import RedisCluster, RedisSentinelGroup, RedisServer
from tests.slow_proxy import SlowProxy

BACKEND = "django_creator_cache.backend.RedisCache"
MODES = ("single", "sentinel", "cluster")
LOCAL_TIER = os.environ.get("DCC_TEST_LOCAL_TIER") == "1"


def wait_until(check: Callable[[], Any], timeout: float, what: str, poll: float = 0.01) -> float:
    """Poll ``check`` until it is true; return the seconds it took (the one polling helper)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)
    return time.monotonic() - start


class Background:
    """Run ``target`` in a daemon thread; ``join()`` re-raises what it raised (the one
    background runner: a failure in the thread fails the test instead of vanishing)."""

    def __init__(self, target: Callable[[], Any], name: str = "test-background") -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(target,), name=name, daemon=True)
        self._thread.start()

    def _run(self, target: Callable[[], Any]) -> None:
        try:
            self.result = target()
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float = 30.0) -> Any:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"background thread still running after {timeout}s")
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Iterator[None]:
    """Circuit breakers, local fallbacks and local tiers are per process: start each
    test closed and empty."""
    yield
    _breakers.clear()
    _fallbacks.clear()
    local_tier.shutdown_all()


@pytest.fixture(autouse=True, scope="session")
def _tiers_ready() -> Iterator[None]:
    """With ``DCC_TEST_LOCAL_TIER=1``, a tier is serving before its backend is used, so
    the tests exercise it rather than the moments before its tracking is confirmed."""
    if not LOCAL_TIER:
        yield
        return
    build = local_tier.tier_for

    def ready(*args: Any) -> local_tier.LocalTier:
        tier = build(*args)
        tier.wait_serving(2)  # not serving by then: its server is down (outage tests)
        return tier

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(local_tier, "tier_for", ready)
        yield


def _with_tier(options: dict[str, Any]) -> dict[str, Any]:
    return {"LOCAL_TIER": {"MAX_STALENESS": 1.0}, **options} if LOCAL_TIER else options


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[RedisSentinelGroup]:
    with RedisSentinelGroup() as group:
        yield group


class ProxiedCluster(RedisCluster):
    """A Cluster whose nodes announce a proxy's port: every client byte crosses a proxy."""

    def __init__(self) -> None:
        super().__init__()
        self.proxies: list[SlowProxy] = []
        nodes = []
        for node in self.nodes:
            proxy = SlowProxy((node.host, node.port))
            proxy.start()
            args = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--cluster-announce-port", str(proxy.port),
                "--cluster-announce-bus-port", str(node.port + 10000),
            ]  # fmt: skip
            nodes.append(RedisServer(args, port=node.port))
            self.proxies.append(proxy)
        self.nodes = nodes
        self._behind = {proxy.port: node for proxy, node in zip(self.proxies, nodes, strict=True)}

    def _server(self, port: int) -> RedisServer:
        return self._behind.get(port) or super()._server(port)

    def stop(self) -> None:
        super().stop()
        for proxy in self.proxies:
            proxy.stop()

    def proxy_for(self, key: str) -> SlowProxy:
        primary = self.primary_for_key(key)
        return next(p for p in self.proxies if p.upstream[1] == primary.port)


@pytest.fixture(scope="session")
def proxied_server() -> Iterator[tuple[RedisServer, SlowProxy]]:
    with RedisServer() as server, SlowProxy((server.host, server.port)) as proxy:
        yield server, proxy


@pytest.fixture(scope="session")
def proxied_cluster() -> Iterator[ProxiedCluster]:
    with ProxiedCluster() as cluster:
        yield cluster


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A server of this test's own, free to be stopped, killed and restarted."""
    with RedisServer() as server:
        yield server


def single_entry(server: RedisServer, **options: Any) -> dict[str, Any]:
    return {"BACKEND": BACKEND, "LOCATION": server.url, "OPTIONS": _with_tier(options)}


def cluster_entry(cluster: RedisCluster, **options: Any) -> dict[str, Any]:
    return {
        "BACKEND": BACKEND,
        "LOCATION": cluster.location,
        "OPTIONS": _with_tier({"MODE": "cluster", **options}),
    }


def sentinel_entry(group: RedisSentinelGroup, **options: Any) -> dict[str, Any]:
    return {
        "BACKEND": BACKEND,
        "LOCATION": f"redis://{group.service_name}/0",
        "OPTIONS": _with_tier({"MODE": "sentinel", "SENTINELS": group.sentinels, **options}),
    }


# What the servers and the counting itself send, whatever the backend does: the reading
# client's handshake and INFO, replication and failure detection between nodes, sentinels'
# and redis-py's topology queries. Command counts leave them out, so they do not flake
# under load on Cluster and Sentinel.
BACKGROUND = frozenset(
    {
        "info", "hello", "ping", "role", "replconf", "psync", "sync", "select", "auth",
        "client|setinfo", "client|setname", "client|list", "client|id", "command",
        "command|docs", "command|info", "cluster|slots", "cluster|shards", "cluster|nodes",
        "cluster|info", "cluster|myid", "config|get", "subscribe", "publish", "readonly",
    }
)  # fmt: skip


@dataclass
class Target:
    """The backend under test and the servers behind it."""

    mode: str
    cache: Any
    commandstats: Callable[[], dict[str, int]]

    def count_commands(self, action: Callable[[], object]) -> dict[str, int]:
        """Commands Redis executed while ``action`` ran (INFO commandstats delta)."""
        before = self.commandstats()
        action()
        after = self.commandstats()
        delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
        return {name: calls for name, calls in delta.items() if calls and name not in BACKGROUND}


@pytest.fixture(params=MODES)
def target(request: pytest.FixtureRequest, settings: Any) -> Iterator[Target]:
    """The backend on a single server, a Sentinel group and a Cluster in turn."""
    mode = request.param
    servers: Any = request.getfixturevalue(
        {"single": "redis_server", "sentinel": "redis_sentinel", "cluster": "redis_cluster"}[mode]
    )
    entry = {"single": single_entry, "sentinel": sentinel_entry, "cluster": cluster_entry}[mode](
        servers
    )
    settings.CACHES = {"default": entry}
    cache = caches["default"]
    flush(cache)
    yield Target(mode, cache, servers.commandstats)
    flush(cache)


def flush(cache: Any) -> None:
    """Empty every database behind ``cache`` (every primary of a Cluster)."""
    client = cache.get_client()
    if cache.cluster:
        client.flushdb(target_nodes="primaries")
    else:
        client.flushdb()


@pytest.fixture
def cache(target: Target) -> Any:
    return target.cache
