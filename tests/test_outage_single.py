"""A single Redis server goes away and comes back: the cache degrades, then recovers.

Everything here runs against a real ``redis-server`` of the test's own
(``own_redis_server``) that is stopped, killed and restarted on the same port.
"No network while the circuit is open" is asserted by counting connection
attempts (``redis.connection.Connection._connect``), never by timing.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from django_creator_cache.backend import RedisCache
from django_creator_cache.exceptions import CacheUnavailable, CircuitOpen
from tests.conftest import wait_until
from tests.redis_servers import RedisServer

LOGGER = "django_creator_cache"
COOLDOWN = 1.0
FAILURES = 3
BASE_OPTIONS: dict[str, Any] = {
    "SOCKET_TIMEOUT": 0.5,
    "SOCKET_CONNECT_TIMEOUT": 0.5,
    "RETRY_ATTEMPTS": 1,
    "RETRY_DELAY": 0.01,
    "CIRCUIT_FAILURES": FAILURES,
    "CIRCUIT_COOLDOWN": COOLDOWN,
}


# -- helpers -----------------------------------------------------------------------


class ConnectCounter:
    """Counts socket connection attempts made by redis-py in this process."""

    def __init__(self) -> None:
        self.count = 0

    def install(self) -> Callable[[], None]:
        original = Connection._connect
        counter = self

        def counting_connect(conn: Connection) -> Any:
            counter.count += 1
            return original(conn)

        Connection._connect = counting_connect  # type: ignore[method-assign]

        def uninstall() -> None:
            Connection._connect = original  # type: ignore[method-assign]

        return uninstall


@pytest.fixture
def connects() -> Iterator[ConnectCounter]:
    counter = ConnectCounter()
    uninstall = counter.install()
    yield counter
    uninstall()


def make_cache(server: RedisServer, **options: Any) -> RedisCache:
    return RedisCache(server.url, {"OPTIONS": {**BASE_OPTIONS, "ALIAS": "outage", **options}})


def open_circuit(cache: RedisCache) -> int:
    """Fail reads until the circuit opens; returns how many calls it took."""
    for calls in range(1, 4 * FAILURES):
        assert cache.get("probe", "miss") == "miss"
        if cache.runtime.breaker.state == "open":
            return calls
    raise AssertionError(f"circuit still {cache.runtime.breaker.state} after {calls} failed calls")


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(LOGGER) and r.levelno == level]


# -- four processes, one server stopped mid-run ---------------------------------------------

WORKERS = 4
WORKER_DEADLINE = 40.0
# A bound, not a benchmark: the first hit after a restart needs at most one cool-down
# (the next probe) plus a round trip; the margin absorbs a loaded machine.
RECOVERY_MARGIN = 3.0


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _outage_worker(
    index: int,
    url: str,
    options: dict[str, Any],
    ready: Any,
    restarted_at: Any,
    reports: Any,
) -> None:
    """One web process: set/get its own keys in a loop through stop and restart."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()

    handler = _ListHandler()
    log = logging.getLogger(LOGGER)
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    counter = ConnectCounter()
    counter.install()

    cache = RedisCache(url, {"OPTIONS": options})
    breaker = cache.runtime.breaker
    exceptions: list[str] = []

    def call(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except BaseException as exc:  # anything reaching the caller is a failure
            exceptions.append(repr(exc))
            return None

    key = f"worker-{index}"
    deadline = time.monotonic() + WORKER_DEADLINE
    report: dict[str, Any] = {"index": index}
    reported_ready = False
    open_check: dict[str, Any] | None = None
    first_hit_after_restart: float | None = None
    hits_after_recovery = 0
    i = 0
    try:
        while time.monotonic() < deadline:
            i += 1
            call(lambda i=i: cache.set(key, i, 60))
            got = call(lambda: cache.get(key))
            restart = restarted_at.value
            if got == i and not reported_ready:
                reported_ready = True
                ready.put(index)
            if open_check is None and breaker.state == "open":
                # The circuit has just opened: a batch of every kind of call must not
                # open a single socket (and report short circuits instead).
                opened_at = breaker.opened_at
                before = counter.count
                short_before = cache.runtime.counters.short_circuits
                for n in range(20):
                    results = (
                        call(lambda n=n: cache.set(f"{key}-{n}", n)),
                        call(lambda n=n: cache.get(f"{key}-{n}", "miss")),
                        call(lambda: cache.get_many([key, f"{key}-x"])),
                        call(lambda: cache.delete(key)),
                        call(lambda: cache.has_key(key)),
                    )
                    if results != (False, "miss", {}, False, False):
                        exceptions.append(f"not degraded while open: {results}")
                still_open = breaker.state == "open" and breaker.opened_at == opened_at
                if still_open:  # no probe slipped in (the cool-down did not end meanwhile)
                    open_check = {
                        "connects": counter.count - before,
                        "short_circuits": cache.runtime.counters.short_circuits - short_before,
                    }
                    reports.put(("open", index, open_check))
            if restart and got == i:
                if first_hit_after_restart is None:
                    first_hit_after_restart = time.monotonic() - restart
                hits_after_recovery += 1
                if hits_after_recovery >= 20:
                    break
            time.sleep(0.002)
    finally:
        report.update(
            exceptions=exceptions,
            warnings=[r.getMessage() for r in handler.records if r.levelno >= logging.WARNING],
            recoveries=[
                r.getMessage()
                for r in handler.records
                if r.levelno == logging.INFO and "available again" in r.getMessage()
            ],
            open_check=open_check,
            first_hit_after_restart=first_hit_after_restart,
            hits_after_recovery=hits_after_recovery,
            stats=cache.stats(server=False),
        )
        reports.put(("done", index, report))


def _get(q: Any, timeout: float, what: str) -> Any:
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


def test_four_processes_survive_a_stopped_server_and_recover(
    own_redis_server: RedisServer,
) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    reports = ctx.Queue()
    restarted_at = ctx.Value("d", 0.0)
    options = {**BASE_OPTIONS, "ALIAS": "outage"}
    procs = [
        ctx.Process(
            target=_outage_worker,
            args=(n, own_redis_server.url, options, ready, restarted_at, reports),
            daemon=True,
        )
        for n in range(WORKERS)
    ]
    for proc in procs:
        proc.start()
    try:
        # Every worker reads its own writes before the outage.
        assert sorted(_get(ready, 60, "workers to hit") for _ in procs) == list(range(WORKERS))

        own_redis_server.stop()  # SIGTERM to the server's PID, mid-run
        assert not own_redis_server.is_running

        open_checks: dict[int, dict[str, Any]] = {}
        done: dict[int, dict[str, Any]] = {}
        while len(open_checks) < WORKERS:
            kind, index, payload = _get(reports, 20, "every circuit to open")
            (open_checks if kind == "open" else done)[index] = payload
        for index, check in open_checks.items():
            assert check["connects"] == 0, f"worker {index} opened sockets while open: {check}"
            assert check["short_circuits"] >= 100, (index, check)

        own_redis_server.start()
        restarted_at.value = time.monotonic()

        while len(done) < WORKERS:
            kind, index, payload = _get(reports, WORKER_DEADLINE + 10, "workers to finish")
            if kind == "done":
                done[index] = payload
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)

    assert [p.exitcode for p in procs] == [0] * WORKERS
    for index, report in sorted(done.items()):
        assert report["exceptions"] == [], f"worker {index}: {report['exceptions']}"
        assert len(report["warnings"]) == 1, f"worker {index}: {report['warnings']}"
        assert "'outage'" in report["warnings"][0]
        assert "ConnectionError" in report["warnings"][0]
        assert len(report["recoveries"]) == 1, f"worker {index}: {report['recoveries']}"
        assert "'outage'" in report["recoveries"][0]
        assert report["hits_after_recovery"] >= 20, f"worker {index} never recovered: {report}"
        assert report["first_hit_after_restart"] <= COOLDOWN + RECOVERY_MARGIN, report
        stats = report["stats"]
        assert stats["outages"] == 1 and stats["circuit"] == "closed", stats
        assert stats["short_circuits"] >= 100 and stats["errors"] >= FAILURES, stats


# -- one process: strict mode, fallback, counters, structures, stats ------------------------


def test_strict_mode_raises_on_failure_and_while_open(
    own_redis_server: RedisServer, connects: ConnectCounter
) -> None:
    cache = make_cache(own_redis_server, STRICT=True)
    assert cache.set("k", "v") is True
    own_redis_server.stop()

    for _ in range(FAILURES):
        with pytest.raises(CacheUnavailable) as failed:
            cache.get("k")
        assert isinstance(failed.value.cause, RedisConnectionError)
        assert failed.value.operation == "get" and failed.value.alias == "outage"
    assert cache.runtime.breaker.state == "open"

    before = connects.count
    for call in (lambda: cache.get("k"), lambda: cache.set("k", 1), lambda: cache.delete("k")):
        with pytest.raises(CacheUnavailable) as short:
            call()
        assert isinstance(short.value.cause, CircuitOpen)
    with pytest.raises(CacheUnavailable) as structure:
        cache.sadd("s", 1)
    assert isinstance(structure.value.cause, CircuitOpen)
    assert connects.count == before


def test_default_mode_degrades_then_recovers(
    own_redis_server: RedisServer,
    connects: ConnectCounter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    cache = make_cache(own_redis_server)
    assert cache.set("k", "before") is True
    assert cache.incr("n", ignore_key_check=True) == 1
    assert cache.sadd("s", "a") == 1
    assert cache.stats(server=False)["circuit"] == "closed"
    own_redis_server.kill(signal.SIGKILL)  # a crash, not a clean shutdown

    # Before the circuit opens: every call goes out, fails, and degrades.
    with pytest.raises(CacheUnavailable) as incr_failed:
        cache.incr("n")
    assert isinstance(incr_failed.value.cause, RedisConnectionError)
    assert cache.sadd("s", "b") == 0
    assert open_circuit(cache) == FAILURES - 2
    stats = cache.stats(server=False)
    assert stats["circuit"] == "open" and stats["outages"] == 1, stats
    assert stats["errors"] >= FAILURES and stats["reconnects"] >= FAILURES, stats

    before = connects.count
    assert cache.get("k", "default") == "default"
    assert cache.set("k", "during") is False
    assert cache.add("new", 1) is False
    assert cache.delete("k") is False
    assert cache.get_many(["k", "x"]) == {}
    assert cache.set_many({"a": 1, "b": 2}) == ["a", "b"]
    assert cache.has_key("k") is False
    assert cache.sadd("s", "c") == 0
    assert cache.smembers("s") == set()
    with pytest.raises(CacheUnavailable) as incr_open:
        cache.decr("n")
    assert isinstance(incr_open.value.cause, CircuitOpen)
    assert connects.count == before, "a call touched the network while the circuit was open"
    assert cache.stats(server=False)["short_circuits"] == 10

    own_redis_server.start()
    own_redis_server.client().set(cache.make_key("k"), cache.codec.encode("after", ""))
    took = wait_until(lambda: cache.get("k") == "after", COOLDOWN + 3, "the cache to hit again")
    assert took <= COOLDOWN + 3
    stats = cache.stats(server=False)
    assert stats["circuit"] == "closed" and stats["outages"] == 1, stats
    assert cache.sadd("s", "d") == 1 and cache.smembers("s") == {"d"}
    assert cache.incr("n", ignore_key_check=True) == 1

    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "'outage'" in warnings[0].getMessage()
    assert "ConnectionError" in warnings[0].getMessage()
    recoveries = [r for r in records(caplog, logging.INFO) if "available again" in r.getMessage()]
    assert len(recoveries) == 1


def test_local_fallback_serves_during_outage_and_is_dropped_after(
    own_redis_server: RedisServer, connects: ConnectCounter
) -> None:
    cache = make_cache(own_redis_server, LOCAL_FALLBACK=True, LOCAL_FALLBACK_SIZE=100)
    assert cache.set("k", "redis-before") is True
    own_redis_server.stop()
    open_circuit(cache)

    before = connects.count
    assert cache.set("k", "local") is False  # not stored in Redis: still reported False
    assert cache.set("only-local", "local-2") is False
    assert cache.get("k") == "local"
    assert cache.get("only-local") == "local-2"
    assert cache.get_many(["k", "only-local", "absent"]) == {"k": "local", "only-local": "local-2"}
    assert cache.get("absent", "miss") == "miss"
    assert connects.count == before
    stats = cache.stats(server=False)
    assert stats["fallback_hits"] == 4, stats
    assert stats["local_fallback_entries"] == 2, stats

    own_redis_server.start()  # empty: nothing is persisted
    # Meanwhile another process wrote "k" into Redis.
    own_redis_server.client().set(cache.make_key("k"), cache.codec.encode("redis-after", ""))
    wait_until(lambda: cache.get("k") != "local", COOLDOWN + 3, "a probe to reach Redis")
    assert cache.get("k") == "redis-after"
    assert cache.get("only-local", "miss") == "miss"
    stats = cache.stats(server=False)
    assert stats["local_fallback_entries"] == 0, stats
    assert stats["fallback_hits"] >= 4 and stats["circuit"] == "closed", stats


def test_stats_while_open_do_not_touch_the_network(
    own_redis_server: RedisServer, connects: ConnectCounter
) -> None:
    cache = make_cache(own_redis_server)
    assert cache.set("k", 1) is True
    own_redis_server.stop()
    open_circuit(cache)
    before = connects.count
    stats = cache.stats(server=False)
    assert connects.count == before
    assert stats["circuit"] == "open" and stats["site_wide"] is False, stats
