#!/usr/bin/env python
"""The cost of a cache call while Redis is down: our circuit breaker against django-redis
(``IGNORE_EXCEPTIONS``) and Django's ``RedisCache``, in one run.

Two kinds of "down", both on 127.0.0.1:

* ``refused``: a port where a redis-server started by this script was running and has been
  stopped; every connect attempt gets an immediate RST (``ConnectionRefusedError``).
* ``blackhole``: a listening socket that never accepts, its accept queue filled by the script
  (``listen(0)`` plus one connection it never accepts); Linux then drops new SYNs, so every
  connect attempt hangs until the connect timeout, as with a firewalled or vanished host.

Candidates, all with ``SOCKET_CONNECT_TIMEOUT`` = ``SOCKET_TIMEOUT`` = 0.5 s:

* ``ours``: ``django_creator_cache.backend.RedisCache``, default options (``RETRY_ATTEMPTS`` 2,
  circuit opens after 5 failures, 5 s cooldown). Measured after the circuit is open, in steady
  state: each operation runs for exactly one circuit cycle (from the moment the circuit opens
  until the probe let through after the cooldown has failed and opened it again), so the mean
  includes the probe's connect attempts;
* ``ours, forced open``: the same with ``CIRCUIT_FAILURES`` 1 and ``CIRCUIT_COOLDOWN`` 3600 s:
  no probe during the measurement, the pure short-circuit cost;
* ``ours, circuit closed``: the ``get`` calls that open the circuit (what each request pays
  before the breaker trips);
* ``django-redis``: ``django_redis.cache.RedisCache`` with ``IGNORE_EXCEPTIONS`` (and
  ``DJANGO_REDIS_IGNORE_EXCEPTIONS``), once with its default retry (redis-py's pool default:
  none) and once with the ``retry``/``retry_on_error`` pool arguments our backend builds
  (taken from our connection module, so they follow it), through ``CONNECTION_POOL_KWARGS``;
* ``Django RedisCache``: ``django.core.cache.backends.redis.RedisCache``, same two retry
  settings (its ``OPTIONS`` go to the redis-py pool). It raises while Redis is down, so what is
  timed is the call plus catching the exception in the benchmark loop.

Every call's result is checked (ours and django-redis: the default on ``get``, ``False``/
``None`` on ``set``, ``{}`` on ``get_many``, no exception; Django: a redis-py connection or
timeout error). Connection attempts are counted by wrapping redis-py's
``Connection._connect`` (one TCP connect) and ``AbstractConnection.connect`` (one redis-py
connect, which retries ``_connect`` under its ``Retry``); the ``Retry`` each candidate's
connections really get is printed under the table.

Reported per cell: mean µs/call (wall time over calls: probes, retries and backoff sleeps
included), the median over timed slices (500 calls, 200 for ours' cycles, 1 for the slow
candidates), calls/s, attempts per call, and the mean's ratio to ours (steady state).

Run from the repository root::

    python benchmarks/outage_bench.py [--variant refused|blackhole|both] [--json PATH]
"""

from __future__ import annotations

import gc
import logging
import platform
import socket
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness

HOST = "127.0.0.1"
TIMEOUT_S = 0.5  # SOCKET_CONNECT_TIMEOUT and SOCKET_TIMEOUT of every candidate
RETRY_ATTEMPTS = 2  # our default; django-redis and Django get the same Retry in "+retry" rows
BULK = 10  # keys per get_many
VALUE = "x" * 100
COOLDOWN_S = 5.0  # our default CACHE_CIRCUIT_COOLDOWN (checked at run time)
OPS = ("get", "set", "get_many")
VARIANTS = ("refused", "blackhole")
SENTINEL = object()  # the default passed to get(): must come back, by identity


@dataclass(frozen=True)
class Candidate:
    """One cache configuration, and how long to measure it."""

    name: str
    label: str
    backend: str
    options: dict[str, Any]
    # "cycle": one circuit cycle per op; "count": per variant, up to (calls, seconds) per op,
    # whichever comes first (at least one call).
    mode: str = "count"
    budget: dict[str, tuple[int, float]] = field(default_factory=dict)
    # The budget cut into this many rounds, run between the other candidates' cells, so that
    # a burst of load from a neighbour does not fall on one cell only.
    rounds: int = 1
    expect: str = "quiet"  # "quiet" (returns a default) or "raises"


OURS_OPTIONS = {
    "SOCKET_CONNECT_TIMEOUT": TIMEOUT_S,
    "SOCKET_TIMEOUT": TIMEOUT_S,
    "RETRY_ATTEMPTS": RETRY_ATTEMPTS,
}


def retry_like_ours() -> dict[str, Any]:
    """The redis-py pool arguments for retries that our backend builds, taken from its own
    code (so these rows follow it): ``retry`` (a ``Retry``) and ``retry_on_error``.

    Needs Django settings configured (package settings fill the options).
    """
    from django_creator_cache.backend import connection, options

    resolved = options.resolve(f"redis://{HOST}:6379/0", OURS_OPTIONS)
    pool_kwargs = connection._factory_options(resolved)["CONNECTION_POOL_KWARGS"]
    return {k: pool_kwargs[k] for k in ("retry", "retry_on_error") if k in pool_kwargs}


def candidates() -> list[Candidate]:
    ours = "django_creator_cache.backend.RedisCache"
    djr = "django_redis.cache.RedisCache"
    dj = "django.core.cache.backends.redis.RedisCache"
    ours_opts = OURS_OPTIONS
    djr_opts = {
        "IGNORE_EXCEPTIONS": True,
        "SOCKET_CONNECT_TIMEOUT": TIMEOUT_S,
        "SOCKET_TIMEOUT": TIMEOUT_S,
    }
    dj_opts = {"socket_connect_timeout": TIMEOUT_S, "socket_timeout": TIMEOUT_S}
    return [
        Candidate("ours", "ours (default options, steady state incl. probes)", ours, ours_opts,
                  mode="cycle"),
        Candidate("ours_forced", "ours, circuit forced open (cooldown 3600 s)", ours,
                  {**ours_opts, "CIRCUIT_FAILURES": 1, "CIRCUIT_COOLDOWN": 3600},
                  budget={"refused": (1_000_000, 1.0), "blackhole": (1_000_000, 1.0)},
                  rounds=5),
        Candidate("djr", "django-redis IGNORE_EXCEPTIONS (default: no retry)", djr, djr_opts,
                  budget={"refused": (20_000, 0.5), "blackhole": (3, 10.0)}),
        Candidate("djr_retry", "django-redis IGNORE_EXCEPTIONS + retry like ours", djr,
                  {**djr_opts, "CONNECTION_POOL_KWARGS": retry_like_ours()},
                  budget={"refused": (10, 5.0), "blackhole": (2, 10.0)}),
        Candidate("dj", "Django RedisCache, raises, caught (default: no retry)", dj, dj_opts,
                  budget={"refused": (20_000, 0.5), "blackhole": (3, 10.0)}, expect="raises"),
        Candidate("dj_retry", "Django RedisCache, raises, caught + retry like ours", dj,
                  {**dj_opts, **retry_like_ours()},
                  budget={"refused": (10, 5.0), "blackhole": (2, 10.0)}, expect="raises"),
    ]  # fmt: skip


# -- connection counting ----------------------------------------------------------------------


class Counts:
    tcp = 0  # Connection._connect: one socket connect attempt
    connect = 0  # AbstractConnection.connect: one redis-py connect (retries _connect inside)


def install_counters() -> None:
    from redis.connection import AbstractConnection, Connection

    tcp_connect = Connection._connect
    connect = AbstractConnection.connect

    def counted_tcp(self: Any) -> Any:
        Counts.tcp += 1
        return tcp_connect(self)

    def counted_connect(self: Any) -> Any:
        Counts.connect += 1
        return connect(self)

    Connection._connect = counted_tcp  # type: ignore[method-assign]
    AbstractConnection.connect = counted_connect  # type: ignore[method-assign]


class WarningCount(logging.Handler):
    """Counts our backend's log records (one warning per outage is expected)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# -- the two kinds of "down" ------------------------------------------------------------------


def refused_port() -> tuple[int, str]:
    """Start a redis-server, note its port and version, stop it: the port now refuses."""
    with harness.redis_server() as server:
        port, version = server.port, harness.server_version(server)
    # Stopped for good, temp dir removed; the port stays unused (never handed out again).
    check_refused(port)
    return port, version


def check_refused(port: int) -> None:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        try:
            sock.connect((HOST, port))
        except ConnectionRefusedError:
            return
    raise SystemExit(f"port {port} does not refuse connections: something listens there")


class Blackhole:
    """A listening socket whose accept queue is full: connects to it hang (SYNs dropped).

    ``listen(0)`` lets one connection wait in the accept queue; the script fills it with its
    own connection and never accepts. While the queue is full Linux drops incoming SYNs
    (``tcp_abort_on_overflow`` only concerns the final ACK), so a connect waits for SYN
    retransmissions until the client's connect timeout.
    """

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind((HOST, 0))
        self.listener.listen(0)
        self.port: int = self.listener.getsockname()[1]
        self.fillers: list[socket.socket] = []
        for _ in range(16):
            sock = socket.socket()
            sock.settimeout(0.2)
            try:
                sock.connect((HOST, self.port))
            except TimeoutError:
                sock.close()
                break
            self.fillers.append(sock)
        else:
            self.close()
            raise SystemExit("could not fill the accept queue: blackhole not possible here")
        self.check()

    def check(self) -> None:
        """A fresh connect must time out (not be refused, not succeed)."""
        with socket.socket() as sock:
            sock.settimeout(0.3)
            start = time.perf_counter()
            try:
                sock.connect((HOST, self.port))
            except TimeoutError:
                if time.perf_counter() - start >= 0.29:
                    return
            except OSError as exc:
                raise SystemExit(
                    f"blackhole port {self.port}: connect failed with {exc!r}"
                ) from None
        raise SystemExit(f"blackhole port {self.port}: a connect did not hang")

    def close(self) -> None:
        for sock in self.fillers:
            sock.close()
        self.listener.close()


# -- Django -----------------------------------------------------------------------------------


def alias(candidate: str, variant: str) -> str:
    return f"{candidate}_{variant}"


def configure_settings() -> None:
    harness.configure_django({}, setup=False, DJANGO_REDIS_IGNORE_EXCEPTIONS=True)


def setup_django(ports: dict[str, int], cands: list[Candidate]) -> None:
    """Add one alias per candidate and variant to ``CACHES``, then ``django.setup()``."""
    import django
    from django.conf import settings

    caches: dict[str, Any] = dict(settings.CACHES)
    for variant, port in ports.items():
        for db, cand in enumerate(cands):
            # Each alias on its own database number: django-redis keys its process-wide pool
            # cache by URL alone, so two aliases with one URL would share the first one's pool
            # (and its retry settings).
            caches[alias(cand.name, variant)] = {
                "BACKEND": cand.backend,
                "LOCATION": f"redis://{HOST}:{port}/{db}",
                "KEY_PREFIX": cand.name,
                "OPTIONS": cand.options,
            }
    settings.CACHES = caches  # before django.setup() and before any cache is built
    django.setup()


def redis_client_of(cand: Candidate, cache: Any) -> Any:
    if cand.name.startswith("ours"):
        return cache.get_client()
    if cand.name.startswith("djr"):
        return cache.client.get_client(write=True)
    return cache._cache.get_client(None, write=True)


def retry_of(cand: Candidate, cache: Any) -> str:
    """The ``Retry`` a connection of this candidate really gets (no network needed)."""
    pool = redis_client_of(cand, cache).connection_pool
    retry = pool.connection_class(**pool.connection_kwargs).retry
    errors = ", ".join(
        sorted(
            e.__name__ if e.__module__.startswith("redis") else f"builtin {e.__name__}"
            for e in retry._supported_errors
        )
    )
    backoff = retry._backoff
    detail = ", ".join(f"{k.lstrip('_')}={v}" for k, v in vars(backoff).items())
    return f"{retry.get_retries()} retries, {type(backoff).__name__}({detail}), on [{errors}]"


# -- timing -------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One candidate x op x variant."""

    candidate: str
    op: str
    variant: str
    calls: int = 0
    seconds: float = 0.0
    tcp: int = 0
    connects: int = 0
    probes: int = 0
    probe_s: float = 0.0  # ours' cycles: time of the call that was let through as the probe
    errors: dict[str, int] = field(default_factory=dict)
    # Per-call time of every timed slice (one call per slice for the slow candidates).
    slice_us: list[float] = field(default_factory=list)

    def add(self, n: int, seconds: float) -> None:
        self.calls += n
        self.seconds += seconds
        self.slice_us.append(seconds / n * 1e6)

    @property
    def us_per_call(self) -> float:
        """Mean: wall time over calls (includes probes, retries' sleeps, everything)."""
        return self.seconds / self.calls * 1e6

    @property
    def median_us(self) -> float:
        """Median over slices of the per-call time: the typical call, robust to noise."""
        return statistics.median(self.slice_us)

    @property
    def max_us(self) -> float:
        return max(self.slice_us)

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.seconds


def calls_for(cache: Any) -> dict[str, Callable[[], Any]]:
    keys = [f"many{i}" for i in range(BULK)]
    return {
        "get": partial(cache.get, "key", SENTINEL),
        "set": partial(cache.set, "key", VALUE, 300),
        "get_many": partial(cache.get_many, keys),
    }


def quiet_slice(call: Callable[[], Any], op: str, n: int, expected: Any) -> tuple[float, int]:
    """Seconds for ``n`` calls and how many returned something unexpected; an exception is
    not caught here: it stops the run (these candidates must never raise)."""
    bad = 0
    start = time.perf_counter()
    if op == "get_many":
        for _ in range(n):
            result = call()
            if result or type(result) is not dict:
                bad += 1
    else:
        for _ in range(n):
            if call() is not expected:
                bad += 1
    return time.perf_counter() - start, bad


def raising_slice(call: Callable[[], Any], n: int, errors: dict[str, int]) -> float:
    """Seconds for ``n`` calls that must each raise a redis-py error, caught here."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    start = time.perf_counter()
    for _ in range(n):
        try:
            call()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            name = type(exc).__name__
            errors[name] = errors.get(name, 0) + 1
        else:
            raise SystemExit("Django RedisCache returned while Redis is down")
    return time.perf_counter() - start


def expected_result(cand: Candidate, op: str) -> Any:
    if op == "get":
        return SENTINEL
    if op == "set":
        return False if cand.name.startswith("ours") else None  # django-redis: None
    return {}


def measure_count(
    cand: Candidate, cache: Any, op: str, variant: str, cell: Cell | None = None
) -> Cell:
    """Up to ``limit`` calls or ``seconds`` of wall time (``cand.budget``), whichever first;
    with ``rounds``, one round's share of that, added to ``cell`` from earlier rounds."""
    call = calls_for(cache)[op]
    first = cell is None
    if cell is None:
        cell = Cell(cand.name, op, variant)
    limit, budget = cand.budget[variant]
    step = 1 if limit <= 100 else 500
    limit = cell.calls + max(limit // cand.rounds, 1)
    budget = cell.seconds + budget / cand.rounds
    if step > 1 and first:  # fast candidates: an untimed warm-up slice (lazy set-up)
        if cand.expect == "raises":
            raising_slice(call, step, {})
        else:
            quiet_slice(call, op, step, expected_result(cand, op))
    tcp0, conn0 = Counts.tcp, Counts.connect
    gc.collect()
    while cell.calls < limit and (cell.calls == 0 or cell.seconds < budget):
        n = min(step, limit - cell.calls)
        if cand.expect == "raises":
            seconds = raising_slice(call, n, cell.errors)
        else:
            seconds, bad = quiet_slice(call, op, n, expected_result(cand, op))
            if bad:
                raise SystemExit(f"{cand.name} {op} ({variant}): {bad} unexpected results")
        cell.add(n, seconds)
    cell.tcp += Counts.tcp - tcp0
    cell.connects += Counts.connect - conn0
    return cell


def open_circuit(cand: Candidate, cache: Any, variant: str) -> Cell:
    """``get`` until the circuit opens: these calls are timed as the closed-circuit row."""
    breaker = cache.runtime.breaker
    cell = Cell(f"{cand.name}_closed", "get", variant)
    tcp0, conn0 = Counts.tcp, Counts.connect
    while breaker.state != "open":
        if cell.calls >= 20:
            raise SystemExit(f"{cand.name} ({variant}): circuit still {breaker.state}")
        seconds, bad = quiet_slice(calls_for(cache)["get"], "get", 1, SENTINEL)
        if bad:
            raise SystemExit(f"{cand.name} get ({variant}): unexpected result while closed")
        cell.add(1, seconds)
    cell.tcp, cell.connects = Counts.tcp - tcp0, Counts.connect - conn0
    return cell


def measure_cycle(cand: Candidate, cache: Any, op: str, variant: str) -> Cell:
    """Calls from now until the circuit has been probed and reopened: one full cycle.

    Called right after the circuit (re)opened, so the window is the cooldown plus one probe;
    the calls that fall after the reopen in the last slice belong to the next cycle (<1 ms).
    """
    breaker = cache.runtime.breaker
    call = calls_for(cache)[op]
    expected = expected_result(cand, op)
    cell = Cell(cand.name, op, variant)
    opened = breaker.opened_at
    tcp0, conn0 = Counts.tcp, Counts.connect
    short0 = cache.runtime.counters.short_circuits
    gc.collect()
    while breaker.opened_at == opened:
        seconds, bad = quiet_slice(call, op, 200, expected)
        if bad:
            raise SystemExit(f"{cand.name} {op} ({variant}): {bad} unexpected results")
        cell.add(200, seconds)
        if cell.seconds > breaker.cooldown * 4 + 30:
            raise SystemExit(f"{cand.name} {op} ({variant}): no probe seen")
    cell.tcp, cell.connects = Counts.tcp - tcp0, Counts.connect - conn0
    cell.probes = cell.calls - (cache.runtime.counters.short_circuits - short0)
    # The probe is in the last slice (it ends the loop): that slice less 199 typical calls.
    cell.probe_s = (cell.slice_us[-1] * 200 - cell.median_us * 199) / 1e6
    return cell


def next_round(entry: list[Any]) -> None:
    """One more round of a candidate measured in rounds (a no-op once all are done)."""
    cand, cache, own, left = entry
    if not left:
        return
    for op, cell in own.items():
        measure_count(cand, cache, op, cell.variant, cell)
    entry[3] = left - 1
    if entry[3] == 0:
        progress(own)


def progress(own: dict[str, Cell]) -> None:
    for op, cell in own.items():
        print(
            f"  {cell.candidate:12} {op:9} {cell.us_per_call:14,.1f} µs/call "
            f"{cell.tcp / cell.calls:8.3g} TCP/call  ({cell.calls:,} calls, "
            f"{cell.seconds:.2f} s)",
            file=sys.stderr,
            flush=True,
        )


# -- reporting ----------------------------------------------------------------------------------


def fmt_num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def fmt_ratio(value: float) -> str:
    return f"{value:,.0f}x" if value >= 100 else f"{value:.2f}x"


def table(cells: list[Cell], labels: dict[str, str], variant: str) -> str:
    ref = {c.op: c.us_per_call for c in cells if c.candidate == "ours" and c.variant == variant}
    header = [
        "candidate",
        "op",
        "µs/call (mean)",
        "µs/call (median)",
        "calls/s",
        "TCP connects/call",
        "redis-py connect()/call",
        "calls timed",
        "ratio to ours (mean)",
    ]
    rows = [
        [
            labels[c.candidate],
            c.op,
            fmt_num(c.us_per_call),
            fmt_num(c.median_us),
            fmt_num(c.calls_per_s),
            fmt_num(c.tcp / c.calls),
            fmt_num(c.connects / c.calls),
            f"{c.calls:,}",
            fmt_ratio(c.us_per_call / ref[c.op]),
        ]
        for c in cells
        if c.variant == variant
    ]
    return harness.markdown_table(header, rows, "llrrrrrrr")


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> Any:
    parser = harness.arguments(__doc__, pin=None)
    parser.add_argument(
        "--variant",
        choices=(*VARIANTS, "both"),
        default="both",
        help="which kind of outage to measure (default both)",
    )
    return harness.parse(parser, argv)


def bench(
    args: Any,
    ports: dict[str, int],
    blackhole: Blackhole | None,
    redis_server: str,
    started: float,
) -> int:
    configure_settings()
    cands = candidates()
    labels = {c.name: c.label for c in cands}
    labels["ours_closed"] = "ours, circuit still closed (the calls that open it)"
    setup_django(ports, cands)
    install_counters()
    log = WarningCount()
    ours_logger = logging.getLogger("django_creator_cache")
    ours_logger.addHandler(log)
    ours_logger.propagate = False

    from django.core.cache import caches

    first = next(iter(ports))
    breaker = caches[alias("ours", first)].runtime.breaker
    if (breaker.threshold, breaker.cooldown) != (5, COOLDOWN_S):
        raise SystemExit(f"ours: circuit defaults changed: {breaker.threshold}, {breaker.cooldown}")
    retries = {c.name: retry_of(c, caches[alias(c.name, first)]) for c in cands}
    cells: list[Cell] = []
    for variant in ports:
        print(f"# {variant}: port {ports[variant]}", file=sys.stderr, flush=True)
        # Candidates measured in rounds: [candidate, cache, cells by op, rounds left].
        pending: list[list[Any]] = []
        for cand in cands:
            cache = caches[alias(cand.name, variant)]
            if cand.name.startswith("ours"):
                opened = open_circuit(cand, cache, variant)
                if cand.name == "ours":
                    cells.append(opened)
            own: dict[str, Cell] = {}
            for op in OPS:
                if cand.mode == "cycle":
                    own[op] = measure_cycle(cand, cache, op, variant)
                else:
                    own[op] = measure_count(cand, cache, op, variant)
            cells.extend(own.values())
            if cand.rounds > 1:
                pending.append([cand, cache, own, cand.rounds - 1])
            else:
                progress(own)
            for entry in pending:
                if entry[0] is not cand:
                    next_round(entry)
        for entry in pending:
            while entry[3]:
                next_round(entry)
        if variant == "refused":
            check_refused(ports[variant])
        elif blackhole is not None:
            blackhole.check()

    # Correctness beyond the per-call checks.
    for cell in cells:
        if cell.candidate == "ours" and cell.probes != 1:
            raise SystemExit(f"ours {cell.op} ({cell.variant}): {cell.probes} probes in a cycle")
        if cell.candidate == "ours_forced" and cell.tcp:
            raise SystemExit(f"ours, forced open, {cell.op}: {cell.tcp} connects")
        if cell.candidate.startswith("dj") and not cell.tcp:
            raise SystemExit(f"{cell.candidate} {cell.op}: no connect attempt at all?")
    warnings = [r for r in log.records if r.levelno >= logging.WARNING]
    ours_aliases = sum(1 for c in cands if c.name.startswith("ours")) * len(ports)
    if len(warnings) != ours_aliases:
        raise SystemExit(f"expected {ours_aliases} outage warnings, got {len(warnings)}")
    duration = time.perf_counter() - started

    meta = harness.versions(
        ("Django", "redis-py", "hiredis", "django-redis"), f"{redis_server} (stopped)"
    )
    meta["Linux"] = platform.release()
    for variant in ports:
        print()
        print(f"### Redis down: {variant} (port {ports[variant]})")
        print()
        print(table(cells, labels, variant))
        probes = [c for c in cells if c.candidate == "ours" and c.variant == variant]
        print()
        print(
            "Ours, the one call per cycle let through as the probe: "
            + ", ".join(
                f"{c.op} {c.probe_s * 1000:,.1f} ms ({c.tcp} TCP attempt(s))" for c in probes
            )
            + f"; cycle = cooldown {COOLDOWN_S:g} s + the probe."
        )
    errors: dict[str, Counter[str]] = {}
    for cell in cells:
        errors.setdefault(cell.variant, Counter()).update(cell.errors)
    print()
    print(f"Our outage warnings: {len(warnings)} (one per alias and outage).")
    print(
        "Django RedisCache exceptions caught: "
        + "; ".join(f"{v}: {dict(e)}" for v, e in errors.items())
    )
    print(
        f"Timeouts: connect {TIMEOUT_S} s, socket {TIMEOUT_S} s for every candidate. "
        "redis-py Retry of each candidate's connections:"
    )
    for cand in cands:
        print(f"  - {cand.label}: {retries[cand.name]}")
    return harness.finish(
        args,
        meta,
        {
            "ports": ports,
            "retries": retries,
            "cells": [
                {
                    **{k: v for k, v in vars(c).items() if k != "slice_us"},
                    "label": labels[c.candidate],
                    "us_per_call": c.us_per_call,
                    "calls_per_s": c.calls_per_s,
                    "median_us": c.median_us,
                    "max_us": c.max_us,
                }
                for c in cells
            ],
        },
        method="every call checked; fast cells in slices, slow ones call by call, up to a "
        "call count or a time budget; mean = wall time over calls (probes, retries and "
        "backoff sleeps included).",
        ran=duration,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    variants = VARIANTS if args.variant == "both" else (args.variant,)
    started = time.perf_counter()

    port, redis_server = refused_port()
    blackhole = Blackhole() if "blackhole" in variants else None
    try:
        ports = {"refused": port}
        if blackhole is not None:
            ports["blackhole"] = blackhole.port
        ports = {v: ports[v] for v in variants}
        return bench(args, ports, blackhole, redis_server, started)
    finally:
        if blackhole is not None:
            blackhole.close()


if __name__ == "__main__":
    sys.exit(main())
