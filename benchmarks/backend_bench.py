#!/usr/bin/env python
"""Operations per second of four cache clients on one real redis-server.

Candidates, all on the same server, each under its own key prefix:

* ``raw``: redis-py (``redis.Redis``, hiredis parser, one pool), values pickled by hand
  (``pickle.HIGHEST_PROTOCOL``), keys built with an f-string: the floor;
* ``ours``: ``django_creator_cache.backend.RedisCache``;
* ``django-redis``: ``django_redis.cache.RedisCache``;
* ``django``: Django's ``django.core.cache.backends.redis.RedisCache``.

One extra row, ``get hit 100 B signed``, measures signed values
(``OPTIONS["SIGNING_KEY"]``): there ``ours`` reads through a second alias with
signing on, the others (which cannot sign) repeat their plain 100 B get hit, and a
fifth runner, ours unsigned, takes its turn in the same alternating slices. The
cost of signing is the median over rounds of ours signed / ours unsigned in that row.
Another, ``get hit 100 B metrics on``, is built the same way: ``ours`` reads through a
backend with ``CACHE_METRICS`` on (Prometheus metrics), beside the same plain runner; the
cost of metrics is ours metered / ours unsigned (metrics off) in that row.

The script starts its own redis-server (``--save "" --appendonly no``, free port on
127.0.0.1, temp dir) and stops it at the end. By default the benchmark process and the
server are pinned to the same CPU: on a 2-core machine a one-connection request/reply loop
is otherwise bimodal (fast when both land on one core, slow when they bounce between
cores). Candidates are interleaved: in every round each row (operation x value size) is
run by every candidate in alternating slices (A B C D, B C D A, ...), so a noisy
neighbour slows them all alike. Ratios are computed per round, then the median over
rounds is reported.

Run from the repository root::

    python benchmarks/backend_bench.py [--rounds 7] [--iterations 3000] [--slices 10]
                                       [--no-pin] [--cpu N] [--json results.json]
"""

from __future__ import annotations

import inspect
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness
from benchmarks.harness import fmt_ops, fmt_ratio, median_ratio, payload, run_cell

CANDIDATES = ("raw", "ours", "django-redis", "django")
# Runs the signed row beside the candidates: our backend without signing.
UNSIGNED = "ours unsigned"
ALIASES = {"ours": "ours", "django-redis": "django_redis", "django": "django_builtin"}
SIGNED_ALIAS = "ours_signed"
METERED_ALIAS = "ours_metrics"
SIGNING_KEY = "benchmark-signing-key-" + "k" * 32
PREFIXES = {"raw": "raw", "ours": "ours", "django-redis": "djr", "django": "dj"}
TIMEOUT = 300
BULK = 50
SIZES = {"100 B": 100, "10 KB": 10 * 1024}
PROTOCOL = pickle.HIGHEST_PROTOCOL


@dataclass(frozen=True)
class Row:
    """One line of the table: an operation on values of one size."""

    op: str
    size: str | None
    # Iterations per timed cell = --iterations // divisor (the slow rows do fewer calls).
    divisor: int
    # ``ours`` reads through the alias with signed values (the others cannot sign).
    signed: bool = False
    # ``ours`` reads through a backend with CACHE_METRICS on (the others have none).
    metrics: bool = False

    @property
    def label(self) -> str:
        label = f"{self.op} {self.size}" if self.size else self.op
        if self.metrics:
            return f"{label} metrics on"
        return f"{label} signed" if self.signed else label


ROWS = (
    Row("get hit", "100 B", 1),
    Row("get hit", "100 B", 1, signed=True),
    Row("get hit", "100 B", 1, metrics=True),
    Row("get hit", "10 KB", 1),
    Row("get miss", None, 1),
    Row("set", "100 B", 1),
    Row("set", "10 KB", 1),
    Row("get_many 50", "100 B", 2),
    Row("get_many 50", "10 KB", 8),
    Row("set_many 50", "100 B", 10),
    Row("set_many 50", "10 KB", 20),
    Row("incr", None, 1),
    Row("incr unchecked", None, 1),
)

# Django's incr must raise ValueError for a missing key, so it cannot be a bare
# INCRBY (which creates the key, without a TTL). The floor for it is the same
# check-and-increment Lua script, sent with raw EVALSHA.
INCR_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
"""


# -- the raw redis-py floor -----------------------------------------------------------------


class RawRedis:
    """The same operations as a Django cache, written directly on redis-py."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.incr_sha = client.script_load(INCR_IF_EXISTS)

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.client.get(f"{self.prefix}:1:{key}")
        return default if raw is None else pickle.loads(raw)

    def set(self, key: str, value: Any, timeout: int | None) -> bool:
        # Integers are stored as Redis integers so that INCRBY works on them.
        data = value if type(value) is int else pickle.dumps(value, PROTOCOL)
        return bool(self.client.set(f"{self.prefix}:1:{key}", data, ex=timeout))

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        prefix = self.prefix
        values = self.client.mget([f"{prefix}:1:{k}" for k in keys])
        return {k: pickle.loads(v) for k, v in zip(keys, values, strict=True) if v is not None}

    def set_many(self, data: dict[str, Any], timeout: int) -> list[str]:
        prefix = self.prefix
        pipe = self.client.pipeline(transaction=False)
        for key, value in data.items():
            pipe.set(f"{prefix}:1:{key}", pickle.dumps(value, PROTOCOL), ex=timeout)
        pipe.execute()
        return []

    def incr(self, key: str, delta: int = 1, ignore_key_check: bool = False) -> int:
        full = f"{self.prefix}:1:{key}"
        if ignore_key_check:
            return int(self.client.incrby(full, delta))
        value = self.client.evalsha(self.incr_sha, 1, full, delta)
        if value is None:
            raise ValueError(key)
        return int(value)

    def make_key(self, key: str) -> str:
        return f"{self.prefix}:1:{key}"


# -- Django -----------------------------------------------------------------------------------


def configure_django(url: str) -> None:
    caches = {
        ALIASES[name]: harness.cache_entry(name, url, PREFIXES[name]) for name in CANDIDATES[1:]
    }
    caches[SIGNED_ALIAS] = harness.cache_entry("ours", url, "ourss", {"SIGNING_KEY": SIGNING_KEY})
    harness.configure_django(caches)


def metered_cache(url: str) -> Any:
    """Our backend with ``CACHE_METRICS`` on: built outside ``caches`` (no settings signal
    resets it) and its runtime made while the setting is on, so only it is measured."""
    from django.test import override_settings

    from django_creator_cache.backend import RedisCache

    entry = harness.cache_entry("ours", url, "oursm", {"ALIAS": METERED_ALIAS})
    cache = RedisCache(entry["LOCATION"], {"KEY_PREFIX": "oursm", "OPTIONS": entry["OPTIONS"]})
    with override_settings(CACHE_METRICS=True):
        if cache.executor.runtime.metrics is None:
            raise SystemExit("ours metered: CACHE_METRICS did not give the alias metrics")
    return cache


def build_candidates(server: Any) -> dict[str, Any]:
    import redis
    from django.core.cache import caches

    pool = redis.ConnectionPool(host=server.host, port=server.port)
    raw_client = redis.Redis(connection_pool=pool)
    found: dict[str, Any] = {"raw": RawRedis(raw_client, PREFIXES["raw"])}
    for name in CANDIDATES[1:]:
        found[name] = caches[ALIASES[name]]
    return found


def redis_client_of(name: str, cache: Any) -> Any:
    """The redis-py client a candidate talks through (to check the parser and server)."""
    if name == "raw":
        return cache.client
    if name == "ours":
        return cache.get_client()
    if name == "django-redis":
        return cache.client.get_client(write=False)
    return cache._cache.get_client(None)


def parser_of(client: Any) -> str:
    conn = client.connection_pool.get_connection()
    try:
        return type(conn._parser).__name__
    finally:
        client.connection_pool.release(conn)


# -- workload -----------------------------------------------------------------------------------


@dataclass
class Workload:
    """Keys and values for one candidate, and the callables timed for each row."""

    cache: Any
    values: dict[str, str]
    calls: dict[str, Callable[[], Any]] = field(default_factory=dict)
    checks: dict[str, Callable[[Any], bool]] = field(default_factory=dict)


def prepare(cache: Any, signed: Any = None, metered: Any = None) -> Workload:
    """Write the keys the reads need and bind one zero-argument callable per row
    (``signed``/``metered``: the cache the signed / metrics rows read through, if this
    candidate has one)."""
    values = {size: payload(n) for size, n in SIZES.items()}
    work = Workload(cache, values)
    for row in ROWS:
        value = values[row.size] if row.size else None
        tag = (row.size or "").replace(" ", "")
        if row.op == "get hit":
            key = f"hit{tag}"
            reader = signed if row.signed and signed is not None else cache
            if row.metrics and metered is not None:
                reader = metered
            reader.set(key, value, None)
            work.calls[row.label] = partial(reader.get, key)
            work.checks[row.label] = partial(_equals, value)
        elif row.op == "get miss":
            cache.get("absent")  # never set
            work.calls[row.label] = partial(cache.get, "absent")
            work.checks[row.label] = partial(_equals, None)
        elif row.op == "set":
            work.calls[row.label] = partial(cache.set, f"set{tag}", value, TIMEOUT)
            work.checks[row.label] = _set_ok
        elif row.op.startswith("get_many"):
            keys = [f"many{tag}_{i}" for i in range(BULK)]
            for key in keys:
                cache.set(key, value, None)
            expected = dict.fromkeys(keys, value)
            work.calls[row.label] = partial(cache.get_many, keys)
            work.checks[row.label] = partial(_equals, expected)
        elif row.op.startswith("set_many"):
            data = {f"smany{tag}_{i}": value for i in range(BULK)}
            work.calls[row.label] = partial(cache.set_many, data, TIMEOUT)
            work.checks[row.label] = _set_many_ok
        elif row.op == "incr":
            cache.set("counter", 0, None)
            work.calls[row.label] = partial(cache.incr, "counter")
            work.checks[row.label] = _is_positive_int
        elif row.op == "incr unchecked":
            # A bare INCRBY where the backend offers it (django-redis's
            # ignore_key_check); Django's built-in RedisCache has no such flag.
            cache.set("counter2", 0, None)
            call = partial(cache.incr, "counter2")
            if "ignore_key_check" in inspect.signature(cache.incr).parameters:
                call = partial(cache.incr, "counter2", ignore_key_check=True)
            work.calls[row.label] = call
            work.checks[row.label] = _is_positive_int
        else:  # pragma: no cover - ROWS and this function go together
            raise AssertionError(row.op)
    return work


def _equals(expected: Any, got: Any) -> bool:
    return bool(got == expected)


def _set_ok(got: Any) -> bool:
    return got is True or got is None  # django-redis and Django return True/None


def _set_many_ok(got: Any) -> bool:
    return not got  # [] (Django API) or None (django-redis): no failed keys


def _is_positive_int(got: Any) -> bool:
    return type(got) is int and got > 0


def verify(name: str, cache: Any, raw_client: Any) -> None:
    """Fail loudly unless ``cache`` really stores in and reads from the server."""
    value = {"candidate": name, "payload": payload(100)}
    if not cache.set("verify", value, TIMEOUT) and name not in ("django-redis", "django"):
        raise SystemExit(f"{name}: set() reported failure")
    got = cache.get("verify")
    if got != value:
        raise SystemExit(f"{name}: get() returned {got!r}, expected the value just set")
    full = cache.make_key("verify")
    if not raw_client.exists(full):
        raise SystemExit(f"{name}: key {full!r} is not in the Redis server")
    if cache.get_many(["verify", "absent"]) != {"verify": value}:
        raise SystemExit(f"{name}: get_many() is wrong")
    cache.set("verify_n", 41, TIMEOUT)
    if cache.incr("verify_n") != 42 or int(raw_client.get(cache.make_key("verify_n"))) != 42:
        raise SystemExit(f"{name}: incr() did not reach Redis")


# -- reporting ----------------------------------------------------------------------------------


def table(results: dict[str, dict[str, list[float]]]) -> tuple[str, list[dict[str, Any]]]:
    header = (
        "operation",
        "raw redis-py ops/s",
        "ours ops/s",
        "ours/raw",
        "django-redis/raw",
        "Django RedisCache/raw",
        "ours/django-redis",
    )
    lines, rows = [], []
    for row in ROWS:
        per_round = results[row.label]
        medians = {name: statistics.median(per_round[name]) for name in CANDIDATES}
        ratios = {
            f"{top}/{bottom}": median_ratio(per_round[top], per_round[bottom])
            for top, bottom in (
                ("ours", "raw"),
                ("django-redis", "raw"),
                ("django", "raw"),
                ("ours", "django-redis"),
            )
        }
        lines.append(
            [row.label, fmt_ops(medians["raw"]), fmt_ops(medians["ours"])]
            + [fmt_ratio(r) for r in ratios.values()]
        )
        rows.append(
            {"row": row.label, "median_ops": medians, "median_ratios": ratios, "rounds": per_round}
        )
    return harness.markdown_table(header, lines), rows


def versions(clients: dict[str, Any]) -> dict[str, str]:
    return harness.versions(
        ("Django", "redis-py", "hiredis", "django-redis"),
        str(clients["raw"].info("server")["redis_version"]),
    )


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> Any:
    parser = harness.arguments(
        __doc__,
        rounds=7,
        iterations=3000,
        iterations_help="calls per timed cell for single-key ops; bulk rows do fewer",
        slices=10,
    )
    return harness.parse(parser, argv)


def bench(args: Any, server: Any, cpu: int | None) -> int:
    configure_django(server.url)
    metered = metered_cache(server.url)
    candidates = build_candidates(server)
    clients = {name: redis_client_of(name, cache) for name, cache in candidates.items()}
    raw_client = clients["raw"]
    for name, client in clients.items():
        kwargs = client.connection_pool.connection_kwargs
        if (kwargs.get("host"), int(kwargs.get("port", 0))) != (server.host, server.port):
            raise SystemExit(f"{name} is not connected to the benchmark server: {kwargs}")
    from django.core.cache import caches

    signed = caches[SIGNED_ALIAS]
    for name, cache in candidates.items():
        verify(name, cache, raw_client)
    verify("ours signed", signed, raw_client)
    verify("ours metered", metered, raw_client)
    if not raw_client.get(signed.make_key("verify")).startswith(b"\xffS1"):
        raise SystemExit("ours signed: the stored value is not signed")
    meta = versions(clients)
    parsers = {name: parser_of(client) for name, client in clients.items()}
    workloads = {
        name: prepare(cache, *((signed, metered) if name == "ours" else ()))
        for name, cache in candidates.items()
    }
    workloads[UNSIGNED] = prepare(candidates["ours"])
    runners = {
        row.label: CANDIDATES + ((UNSIGNED,) if row.signed or row.metrics else ()) for row in ROWS
    }
    iterations = {row.label: max(args.iterations // row.divisor, 10) for row in ROWS}

    print(f"# backend benchmark: {len(CANDIDATES)} candidates, {args.rounds} rounds", flush=True)
    started = time.perf_counter()
    # Warm-up: every cell once at a quarter of its size (connections, caches, Lua scripts).
    for row in ROWS:
        for name in runners[row.label]:
            run_cell(workloads[name].calls[row.label], max(iterations[row.label] // 4, 5))

    def run(label: str, name: str) -> tuple[int, float]:
        per_slice = max(iterations[label] // args.slices, 1)
        work = workloads[name]
        return harness.checked(work.calls[label], per_slice, work.checks[label], f"{name} {label}")

    results = harness.interleaved(
        [row.label for row in ROWS],
        runners.__getitem__,
        run,
        rounds=args.rounds,
        slices=args.slices,
    )
    duration = time.perf_counter() - started

    harness.require_no_errors(candidates["ours"], signed, metered)
    measured = metered.runtime.metrics.get_hits
    if measured < args.rounds * args.slices:
        raise SystemExit(f"ours metered: only {measured} get hits measured")
    if raw_client.dbsize() == 0:
        raise SystemExit("the Redis server is empty: nothing was stored")

    text, rows = table(results)
    signed_ratio = median_ratio(
        results["get hit 100 B signed"]["ours"], results["get hit 100 B signed"][UNSIGNED]
    )
    metrics_row = results["get hit 100 B metrics on"]
    metrics_ratio = median_ratio(metrics_row["ours"], metrics_row[UNSIGNED])
    print()
    print(text)
    print()
    print("Parsers: " + ", ".join(f"{k}={v}" for k, v in parsers.items()))
    print(
        f"Signed values: get hit 100 B, ours signed / ours unsigned in the same slices = "
        f"{signed_ratio:.3f} ops/s ({(1 / signed_ratio - 1) * 100:.1f}% more time a call), "
        "median of per-round ratios"
    )
    print(
        f"Metrics: get hit 100 B, ours with CACHE_METRICS / ours without in the same slices = "
        f"{metrics_ratio:.3f} ops/s ({(1 / metrics_ratio - 1) * 100:.1f}% more time a call), "
        "median of per-round ratios"
    )
    return harness.finish(
        args,
        meta,
        {
            "rounds": args.rounds,
            "iterations": iterations,
            "parsers": parsers,
            "rows": rows,
            "signed_over_unsigned_get_hit_100B": signed_ratio,
            "metered_over_plain_get_hit_100B": metrics_ratio,
        },
        pinned=cpu,
        method=f"{args.rounds} rounds; in each, every row is run by every candidate in "
        f"{args.slices} alternating slices (order rotated); "
        f"ops/s = calls per second (get_many/set_many: calls of {BULK} keys); "
        "ratios are per-round ratios, median over rounds.",
        timed=duration,
    )


def main(argv: list[str] | None = None) -> int:
    return harness.run_pinned(parse_args(argv), bench)


if __name__ == "__main__":
    sys.exit(main())
