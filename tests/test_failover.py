"""Failover on real servers: primaries killed with SIGKILL under load, transient errors retried.

* Cluster: a primary is killed while threads of this process and two other OS processes read
  and write keys on all three primaries. Nothing raises, no key ever reads another key's value,
  the other primaries keep serving during the outage, and once the replica is promoted the same
  backend objects read and write the dead primary's slots again.
* Sentinel: the primary is killed under load; the same backend object follows the new primary,
  keeps writing there when the old one comes back as a replica, and a READONLY reply from a
  demoted primary makes it reconnect to the primary the sentinels name.
* Retries: a connection reset while a command is in flight and a server still loading its
  dataset (``LOADING``) are retried inside redis-py: the call succeeds and no error is counted.

Every test starts servers of its own: killing nodes of the session-wide ones would break other
tests. Every wait is bounded; worker processes are joined with a timeout.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest
import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from django_creator_cache.backend import RedisCache, connection
from tests.conftest import wait_until
from tests.redis_servers import RedisCluster, RedisSentinelGroup, RedisServer

# Short timeouts so a dead server costs little; the circuit breaker keeps its defaults.
TIMEOUTS = {
    "SOCKET_TIMEOUT": 0.5,
    "SOCKET_CONNECT_TIMEOUT": 0.5,
    "RETRY_ATTEMPTS": 2,
    "RETRY_DELAY": 0.05,
}
CLUSTER_OPTIONS = {"MODE": "cluster", "ALIAS": "failover-cluster", **TIMEOUTS}
RECOVERY_BOUND = 15.0
"""Seconds after a completed failover within which the backend must work again."""
LOOP_LIMIT = 60.0
"""Hard bound on any read/write loop, whatever happens to the test driving it."""
PAUSE = 0.002
"""Seconds between two round trips of a loop (two CPUs run servers, threads and processes)."""


class _Flag(Protocol):
    def is_set(self) -> bool: ...


class _Outbox(Protocol):
    def put(self, item: Any) -> None: ...


@dataclass
class LoopReport:
    """What one read/write loop saw; picklable, so worker processes can send it back."""

    name: str
    keys: list[str]
    calls: list[tuple[float, str, bool]] = field(default_factory=list)
    """(start time, key, set+get round trip succeeded) of every round trip."""
    exceptions: list[str] = field(default_factory=list)
    foreign: list[tuple[str, Any]] = field(default_factory=list)
    """(key, value) where a read of ``key`` returned a value written for another key."""
    last_read: dict[str, tuple[float, str]] = field(default_factory=dict)
    """Per key: (time, value) of the last read that returned the value just written."""


def _embedded_key(value: Any) -> str | None:
    return value.rpartition(":")[0] if isinstance(value, str) else None


def read_write_loop(
    cache: RedisCache,
    name: str,
    keys: list[str],
    stop: _Flag,
    failed_over: _Flag,
    outbox: _Outbox,
) -> LoopReport:
    """Write ``f"{key}:{n}"`` to each key and read it back until ``stop``.

    Sends ``("ready", name)`` after a first round in which every key worked, and
    ``("recovered", name)`` once every key worked after ``failed_over`` was seen set.
    Each round also reads all keys at once (``get_many``, several slots on a cluster).
    """
    report = LoopReport(name, keys)
    counter = 0
    ready = False
    recovered: set[str] | None = None
    deadline = time.monotonic() + LOOP_LIMIT
    while not stop.is_set() and time.monotonic() < deadline:
        worked: set[str] = set()
        for key in keys:
            counter += 1
            value = f"{key}:{counter}"
            started = time.monotonic()
            try:
                stored = cache.set(key, value)
                got = cache.get(key)
            except Exception as exc:  # the point of the test: nothing may get here
                report.exceptions.append(f"{key}: {exc!r}")
                continue
            if got is not None and _embedded_key(got) != key:
                report.foreign.append((key, got))
            ok = stored is True and got == value
            report.calls.append((started, key, ok))
            if ok:
                worked.add(key)
                report.last_read[key] = (time.monotonic(), got)
            time.sleep(PAUSE)
        try:
            for key, got in cache.get_many(keys).items():
                if _embedded_key(got) != key:
                    report.foreign.append((key, got))
        except Exception as exc:
            report.exceptions.append(f"get_many: {exc!r}")
        if not ready and worked == set(keys):
            ready = True
            outbox.put(("ready", name))
        if failed_over.is_set():
            if recovered is None:
                recovered = set()
            elif recovered != set(keys):
                recovered |= worked
                if recovered == set(keys):
                    outbox.put(("recovered", name))
    return report


def process_worker(
    name: str,
    location: str,
    options: dict[str, Any],
    key_sets: list[list[str]],
    stop: _Flag,
    failed_over: _Flag,
    outbox: _Outbox,
) -> None:
    """A worker process: threads running :func:`read_write_loop`, one backend each."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()
    reports: list[LoopReport] = []

    def run(index: int, keys: list[str]) -> None:
        cache = RedisCache(location, {"OPTIONS": options})
        loop_name = f"{name}/t{index}"
        try:
            reports.append(read_write_loop(cache, loop_name, keys, stop, failed_over, outbox))
        except BaseException as exc:
            reports.append(LoopReport(loop_name, keys, exceptions=[f"loop died: {exc!r}"]))

    threads = [threading.Thread(target=run, args=(i, k)) for i, k in enumerate(key_sets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(LOOP_LIMIT + 10)
    outbox.put(("reports", name, reports))


@pytest.fixture(autouse=True)
def _close_own_clients() -> Iterator[None]:
    """Close the shared redis-py clients this test built: their servers are gone after it."""
    before = set(connection._clients)
    yield
    for key in set(connection._clients) - before:
        client = connection._clients.pop(key)
        with contextlib.suppress(Exception):
            client.close()


def _errors(cache: RedisCache) -> int:
    return int(cache.stats(server=False)["errors"])


def _wait_for(messages: Any, kind: str, names: set[str], timeout: float) -> list[Any]:
    """Collect one ``kind`` message from each of ``names`` (others are kept aside)."""
    seen: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while set(seen) != names:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            missing = sorted(names - set(seen))
            raise AssertionError(f"no {kind!r} from {missing} within {timeout}s")
        try:
            message = messages.get(timeout=min(remaining, 0.5))
        except queue.Empty:
            continue
        if message[0] == kind:
            seen[message[1]] = message
    return list(seen.values())


# -- Cluster ------------------------------------------------------------------------------


def _keys_on_every_primary(
    cluster: RedisCluster, cache: RedisCache, owner: str, per_primary: int = 2
) -> tuple[list[str], dict[str, int]]:
    """Keys named after ``owner``, ``per_primary`` on each primary; and key -> primary port."""
    port_of_slot: dict[int, int] = {}
    chosen: dict[int, list[str]] = {}
    primaries = {p.port for p in cluster.primaries()}
    for n in range(1000):
        key = f"{owner}k{n}"
        full = cache.make_key(key)
        slot = key_slot(full.encode())
        if slot not in port_of_slot:
            port_of_slot[slot] = cluster.primary_for_key(full).port
        bucket = chosen.setdefault(port_of_slot[slot], [])
        if len(bucket) < per_primary:
            bucket.append(key)
        if set(chosen) == primaries and all(len(b) == per_primary for b in chosen.values()):
            break
    keys = [key for bucket in chosen.values() for key in bucket]
    return keys, {key: port for port, bucket in chosen.items() for key in bucket}


@pytest.mark.slow
def test_cluster_primary_killed_under_load() -> None:
    ctx = multiprocessing.get_context("spawn")
    stop, failed_over = ctx.Event(), ctx.Event()
    messages: Any = ctx.Queue()
    processes: list[Any] = []
    threads: list[threading.Thread] = []
    reports: list[LoopReport] = []
    with RedisCluster() as cluster:
        location = cluster.location
        caches = [RedisCache(location, {"OPTIONS": CLUSTER_OPTIONS}) for _ in range(3)]
        owners = {f"main/t{i}": caches[i] for i in range(3)}
        worker_owners = {f"proc{p}": [f"proc{p}/t{i}" for i in range(2)] for p in range(2)}
        port_of: dict[str, int] = {}
        keys_of: dict[str, list[str]] = {}
        for owner in [*owners, *(o for group in worker_owners.values() for o in group)]:
            keys, ports = _keys_on_every_primary(cluster, caches[0], owner.replace("/", "-"))
            keys_of[owner], port_of = keys, {**port_of, **ports}
        assert len(set(port_of.values())) == 3

        victim_key = keys_of["main/t0"][0]
        victim = cluster.primary_for_key(caches[0].make_key(victim_key))
        victim_keys = {k for k, port in port_of.items() if port == victim.port}
        other_keys = set(port_of) - victim_keys
        all_loops = {*owners, *(o for group in worker_owners.values() for o in group)}

        try:
            for pname, loop_names in worker_owners.items():
                args = (pname, location, CLUSTER_OPTIONS, [keys_of[n] for n in loop_names])
                process = ctx.Process(
                    target=process_worker, args=(*args, stop, failed_over, messages), daemon=True
                )
                process.start()
                processes.append(process)

            def run(owner: str) -> None:
                report = read_write_loop(
                    owners[owner], owner, keys_of[owner], stop, failed_over, messages
                )
                reports.append(report)

            threads = [threading.Thread(target=run, args=(owner,)) for owner in owners]
            for thread in threads:
                thread.start()
            _wait_for(messages, "ready", all_loops, timeout=30)
            time.sleep(0.5)  # a stretch of normal traffic before the crash

            killed_at = time.monotonic()
            victim.kill(signal.SIGKILL)
            promoted = cluster.wait_for_failover(victim)
            failed_over_at = time.monotonic()
            failed_over.set()
            assert promoted.port != victim.port
            _wait_for(messages, "recovered", all_loops, timeout=RECOVERY_BOUND)
            time.sleep(0.5)  # normal traffic again on the promoted replica
        finally:
            stop.set()
            for thread in threads:
                thread.join(LOOP_LIMIT)
            try:
                for message in _wait_for(messages, "reports", set(worker_owners), timeout=30):
                    reports.extend(message[2])
            finally:
                for process in processes:
                    process.join(10)
                    if process.is_alive():  # ours: started above
                        process.terminate()
                        process.join(5)

        # The same backend objects of this process still read and write the lost slots.
        for cache, owner in zip(caches, owners, strict=True):
            for key in keys_of[owner]:
                assert cache.set(key, f"{key}:final") is True
                assert cache.get(key) == f"{key}:final"

    assert {r.name for r in reports} == all_loops
    assert [e for r in reports for e in r.exceptions] == []
    assert [f for r in reports for f in r.foreign] == []
    assert all(p.exitcode == 0 for p in processes)

    outage = (killed_at, failed_over_at)
    summary: dict[str, Any] = {"failover_s": round(failed_over_at - killed_at, 2)}
    for group in ("main", "proc0", "proc1"):
        calls = [c for r in reports if r.name.startswith(group) for c in r.calls]
        during = [ok for t, key, ok in calls if outage[0] <= t < outage[1] and key in other_keys]
        lost = [ok for t, key, ok in calls if outage[0] <= t < outage[1] and key in victim_keys]
        summary[group] = {
            "others ok": f"{sum(during)}/{len(during)}",
            "victim ok": f"{sum(lost)}/{len(lost)}",
        }
        # Keys on the surviving primaries kept working while the victim's slots failed over:
        # one dead primary must not open the alias-wide circuit for the whole cluster.
        assert len(during) >= 10, summary
        assert sum(during) >= 0.8 * len(during), summary
        # The crash was felt: round trips on the victim's keys failed during the outage.
        assert lost and not all(lost), summary

    for report in reports:
        for key in report.keys:
            after = [t for t, k, ok in report.calls if k == key and ok and t >= failed_over_at]
            assert after, f"{report.name}: {key} never worked after the failover"
            assert after[0] - failed_over_at < RECOVERY_BOUND
            read_at, value = report.last_read[key]
            assert read_at > failed_over_at and _embedded_key(value) == key
    print("cluster failover:", summary)


# -- Sentinel -----------------------------------------------------------------------------


def _stored_int(server: RedisServer, cache: RedisCache, key: str) -> int | None:
    """The integer ``cache`` stored under ``key``, read straight from ``server``."""
    with server.client(socket_timeout=2) as client:
        raw = client.get(cache.make_key(key))
    return None if raw is None else int(raw)


def _readonly_replies(server: RedisServer) -> int:
    stats = server.info("errorstats").get("errorstat_READONLY", {})
    return int(stats.get("count", 0))


@pytest.mark.slow
def test_sentinel_primary_killed_backend_follows_new_primary() -> None:
    stop, failed_over = threading.Event(), threading.Event()
    messages: queue.Queue[Any] = queue.Queue()
    reports: list[LoopReport] = []
    with RedisSentinelGroup() as group:
        options = {
            "MODE": "sentinel",
            "SENTINELS": group.sentinels,
            "ALIAS": "failover-sentinel",
            **TIMEOUTS,
        }
        cache = RedisCache(f"redis://{group.service_name}/0", {"OPTIONS": options})
        assert cache.set("before", 1) is True
        assert cache.get("before") == 1
        assert _stored_int(group.primary, cache, "before") == 1

        loop_cache = RedisCache(f"redis://{group.service_name}/0", {"OPTIONS": options})
        thread = threading.Thread(
            target=lambda: reports.append(
                read_write_loop(loop_cache, "loop", ["s0", "s1"], stop, failed_over, messages)
            )
        )
        thread.start()
        try:
            _wait_for(messages, "ready", {"loop"}, timeout=10)
            old = group.primary
            killed_at = time.monotonic()
            old.kill(signal.SIGKILL)
            new = group.wait_for_failover()
            failed_over_at = time.monotonic()
            failed_over.set()

            # The same backend object writes to the new primary, without a restart.
            took = wait_until(
                lambda: cache.set("after", 2) is True and cache.get("after") == 2,
                RECOVERY_BOUND,
                "set/get after the sentinel failover",
            )
            assert _stored_int(new, cache, "after") == 2
            _wait_for(messages, "recovered", {"loop"}, timeout=RECOVERY_BOUND)

            # The old primary comes back as a replica of the new one (what the sentinels
            # make of it ~10 s after it answers again; started so here to save the wait).
            old.extra_args = ["--replicaof", new.host, str(new.port)]
            old.start()
            wait_until(
                lambda: old.info("replication").get("master_link_status") == "up",
                RECOVERY_BOUND,
                "the old primary syncing as a replica",
            )
            for n in range(3, 13):
                assert cache.set("after", n) is True
                assert cache.get("after") == n
            assert _stored_int(new, cache, "after") == 12
            wait_until(lambda: _stored_int(old, cache, "after") == 12, 5, "replication to the old")
        finally:
            stop.set()
            thread.join(LOOP_LIMIT)

        # A primary demoted under the backend's feet answers writes with READONLY. Swap the
        # roles behind the backend's idle connections (no client is disconnected), then make
        # the sentinels name the new primary: the next write meets READONLY on its pooled
        # connection; redis-py's Sentinel connection must reconnect and write to the primary.
        assert cache.set("swap", 0) is True
        with old.client() as admin:
            admin.execute_command("REPLICAOF", "NO", "ONE")
        with new.client() as admin:
            admin.execute_command("REPLICAOF", old.host, str(old.port))
        wait_until(  # synced: the next write meets READONLY, not a LOADING of the sync
            lambda: new.info("replication").get("master_link_status") == "up", 5, "resync"
        )
        for sentinel in group.sentinel_servers:
            with sentinel.client(socket_timeout=2) as admin:
                admin.execute_command("SENTINEL", "REMOVE", group.service_name)
                admin.execute_command(
                    "SENTINEL", "MONITOR", group.service_name, old.host, old.port, group.quorum
                )
        assert group.current_primary_address() == old.address
        readonly_before = _readonly_replies(new)
        errors_before = _errors(cache)
        assert cache.set("swap", 1) is True
        assert _readonly_replies(new) > readonly_before  # the write did meet READONLY
        assert _stored_int(old, cache, "swap") == 1
        assert cache.get("swap") == 1
        assert _errors(cache) == errors_before

    (report,) = reports
    assert report.exceptions == []
    assert report.foreign == []
    outage = [ok for t, _, ok in report.calls if killed_at <= t < failed_over_at]
    assert outage and not all(outage)  # calls degraded during the failover
    print(f"sentinel failover: {failed_over_at - killed_at:.2f}s, backend back {took:.2f}s later")


# -- Retries of transient errors ----------------------------------------------------------


def _single(server: RedisServer, alias: str, **options: Any) -> RedisCache:
    return RedisCache(server.url, {"OPTIONS": {"ALIAS": alias, **TIMEOUTS, **options}})


def test_connections_killed_between_calls_are_reopened(own_redis_server: RedisServer) -> None:
    cache = _single(own_redis_server, "reset-between")
    assert cache.set("k", 1) is True
    errors = _errors(cache)
    with own_redis_server.client() as admin:
        assert admin.execute_command("CLIENT", "KILL", "TYPE", "normal") >= 1
    # The pool notices the closed connection before using it and opens a new one.
    assert cache.get("k") == 1
    assert cache.set("k", 2) is True
    assert _errors(cache) == errors


def _reset_while_in_flight(server: RedisServer, cache: RedisCache, key: str) -> bool:
    """``cache.set(key, 1)`` whose connection is killed while the server holds the command."""
    result: list[bool] = []
    with server.client(socket_timeout=5) as admin:
        admin.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
        try:
            writer = threading.Thread(target=lambda: result.append(cache.set(key, 1)))
            writer.start()

            def held() -> bool:
                clients = admin.execute_command("CLIENT", "LIST", "TYPE", "normal").decode()
                return any(
                    " flags=b " in line and " cmd=set " in line for line in clients.splitlines()
                )

            wait_until(held, 5, "the SET to be held by CLIENT PAUSE")
            assert admin.execute_command("CLIENT", "KILL", "TYPE", "normal") >= 1
        finally:
            admin.execute_command("CLIENT", "UNPAUSE")
        writer.join(10)
    assert not writer.is_alive()
    return result[0]


def test_connection_reset_in_flight_is_retried(own_redis_server: RedisServer) -> None:
    retrying = _single(own_redis_server, "reset-retry", RETRY_ATTEMPTS=2)
    once = _single(own_redis_server, "reset-once", RETRY_ATTEMPTS=0)
    assert retrying.set("warm", 1) is True and once.set("warm", 1) is True
    errors = _errors(retrying)
    assert _reset_while_in_flight(own_redis_server, retrying, "retried") is True
    assert _stored_int(own_redis_server, retrying, "retried") == 1
    assert _errors(retrying) == errors
    # Without retries the same reset reaches the backend: the write reports False.
    errors = _errors(once)
    assert _reset_while_in_flight(own_redis_server, once, "not-retried") is False
    assert _errors(once) == errors + 1


def test_timeout_is_not_retried(own_redis_server: RedisServer) -> None:
    """A server that stops answering costs one timeout per call, not one per attempt."""
    cache = _single(own_redis_server, "frozen", SOCKET_TIMEOUT=0.3, RETRY_ATTEMPTS=2)
    assert cache.set("k", 1) is True
    own_redis_server.kill(signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert cache.get("k", "missed") == "missed"
        elapsed = time.monotonic() - started
    finally:
        own_redis_server.kill(signal.SIGCONT)
    assert 0.25 < elapsed < 0.55


def test_loading_dataset_is_retried() -> None:
    """A restarted server answers LOADING until its dataset is in memory: a read waits."""
    # 2,000 keys at 0.5 ms each keep the server loading for about a second, and it serves
    # clients (with LOADING replies) every kilobyte loaded.
    slow_load = ["--key-load-delay", "500", "--loading-process-events-interval-bytes", "1024"]
    with RedisServer(slow_load) as server:
        cache = _single(server, "loading", RETRY_ATTEMPTS=20, RETRY_DELAY=0.05)
        assert cache.set("k", "kept") is True
        with server.client() as admin:
            pipe = admin.pipeline(transaction=False)
            for n in range(2000):
                pipe.set(f"filler:{n}", "x")
            pipe.execute()
            admin.save()
        errors = _errors(cache)
        server.stop()
        server.start(wait=False)

        def loading() -> bool:
            try:
                with server.client(
                    socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
                ) as probe:
                    probe.ping()
            except redis.BusyLoadingError:
                return True
            except redis.ConnectionError:
                return False
            raise AssertionError("the server finished loading before the test saw LOADING")

        wait_until(loading, 10, "LOADING replies")
        loading_before = server.info("errorstats").get("errorstat_LOADING", {}).get("count", 0)
        assert cache.get("k") == "kept"
        loading_after = server.info("errorstats").get("errorstat_LOADING", {}).get("count", 0)
        assert loading_after > loading_before  # the backend's GET did meet LOADING
        assert _errors(cache) == errors
