"""What every benchmark shares, written once.

* CPU pinning (``--no-pin``/``--pin``, ``--cpu``): on a 2-core machine a one-connection
  request/reply loop is bimodal unless the script and redis-server share one CPU;
* a loopback redis-server per run (``tests.redis_servers.RedisServer``: free port, temp dir,
  no persistence), pinned with ``taskset`` to the same CPU and stopped by its PID at the end;
* Django settings for a benchmark (no DEBUG query log, no statistics flush thread);
* interleaved timing: in every round each row is run by each candidate in slices, in an
  order rotated every slice and every round, so a noisy neighbour slows them all alike;
  ratios are computed per round, then the median over rounds;
* what a call costs in Redis (round trips, commands sent, ``INFO commandstats`` deltas);
* Markdown tables, the closing report (versions, pinning, method, command) and ``--json``.

Figures are only ever ratios between candidates of the same run: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from itertools import repeat
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.redis_servers import RedisServer, free_port  # noqa: E402, F401 (free_port: re-export)

R = TypeVar("R")
T = TypeVar("T")

BACKENDS = {
    "ours": "django_creator_cache.backend.RedisCache",
    "django-redis": "django_redis.cache.RedisCache",
    "django": "django.core.cache.backends.redis.RedisCache",
    "locmem": "django.core.cache.backends.locmem.LocMemCache",
}
"""The cache backends the benchmarks compare, by the short name the tables use."""


# -- arguments and pinning ----------------------------------------------------------------------


def arguments(
    doc: str,
    *,
    rounds: int | None = None,
    iterations: int | None = None,
    iterations_help: str = "calls per timed cell",
    slices: int | None = None,
    pin: bool | None = True,
    json_out: bool = True,
) -> argparse.ArgumentParser:
    """A parser with the options the benchmarks share; ``pin``: True pins by default
    (``--no-pin``), False pins on request (``--pin``), None has no pinning options."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    counts = (
        ("--rounds", rounds, "timed rounds"),
        ("--iterations", iterations, iterations_help),
        ("--slices", slices, "candidates alternate slice by slice in this many slices"),
    )
    for flag, default, what in counts:
        if default is not None:
            parser.add_argument(flag, type=int, default=default, help=f"{what} (default {default})")
    if pin is not None:
        flag, action, what = (
            ("--no-pin", "store_false", "do not pin") if pin else ("--pin", "store_true", "pin")
        )
        parser.add_argument(
            flag, dest="pin", action=action, help=f"{what} this process and redis-server to one CPU"
        )
        parser.add_argument(
            "--cpu", type=int, default=None, help="CPU to pin to (default: the last)"
        )
    if json_out:
        parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    return parser


def parse(
    parser: argparse.ArgumentParser, argv: list[str] | None, positive: Sequence[str] = ()
) -> argparse.Namespace:
    """Parse ``argv``; ``--rounds``, ``--iterations``, ``--slices`` and every option named
    in ``positive`` must be at least 1."""
    args = parser.parse_args(argv)
    counts = [*("rounds", "iterations", "slices"), *positive]
    bad = [name for name in dict.fromkeys(counts) if getattr(args, name, 1) < 1]
    if bad:
        spelled = ", ".join("--" + name.replace("_", "-") for name in bad)
        raise SystemExit(f"{spelled} must be positive")
    return args


def chosen_cpu(args: argparse.Namespace) -> int | None:
    """The CPU to pin to (``--cpu``, default the last one), or None when not pinning."""
    if not getattr(args, "pin", False):
        return None
    cpu = getattr(args, "cpu", None)
    return max(os.sched_getaffinity(0)) if cpu is None else int(cpu)


def pin(cpu: int | None) -> None:
    """Pin this process to ``cpu`` (nothing when None)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def pinned_text(cpu: int | None) -> str:
    return f"yes, benchmark and redis-server on CPU {cpu}" if cpu is not None else "no"


def command_line() -> str:
    """How this benchmark was started, for the report."""
    return shlex.join([Path(sys.executable).name, *sys.argv])


# -- redis-server ---------------------------------------------------------------------------------


class BenchServer(RedisServer):
    """A loopback redis-server, pinned to ``cpu`` with ``taskset`` when given."""

    def __init__(self, cpu: int | None = None) -> None:
        super().__init__()
        self.cpu = cpu

    def command_line(self) -> list[str]:
        argv = super().command_line()
        if self.cpu is None:
            return argv
        taskset = shutil.which("taskset") or "/usr/bin/taskset"
        return [taskset, "-c", str(self.cpu), *argv]


@contextmanager
def redis_server(cpu: int | None = None) -> Iterator[RedisServer]:
    """A started redis-server (on ``cpu`` if given), stopped by its PID on the way out."""
    server = BenchServer(cpu)
    try:
        server.start()
        if cpu is not None:
            # taskset execs redis-server: same PID, so the pinning can be checked.
            affinity = os.sched_getaffinity(server.pid)
            if affinity != {cpu}:
                raise SystemExit(f"redis-server affinity is {affinity}, expected {{{cpu}}}")
        yield server
    finally:
        server.close()


@contextmanager
def pinned_server(args: argparse.Namespace) -> Iterator[tuple[RedisServer, int | None]]:
    """Pin this process as ``args`` say, and start redis-server on the same CPU."""
    cpu = chosen_cpu(args)
    pin(cpu)
    with redis_server(cpu) as server:
        yield server, cpu


def run_pinned(
    args: argparse.Namespace, bench: Callable[[Any, RedisServer, int | None], int]
) -> int:
    """``bench(args, server, cpu)`` with this process pinned and a redis-server beside it."""
    with pinned_server(args) as (server, cpu):
        return bench(args, server, cpu)


# -- Django ---------------------------------------------------------------------------------------


def cache_entry(
    backend: str, url: str, prefix: str | None = None, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A ``CACHES`` entry for one of :data:`BACKENDS` on ``url``."""
    entry: dict[str, Any] = {"BACKEND": BACKENDS[backend], "LOCATION": url}
    if prefix is not None:
        entry["KEY_PREFIX"] = prefix
    if options:
        entry["OPTIONS"] = options
    return entry


def configure_django(
    caches: dict[str, dict[str, Any]],
    *,
    apps: Sequence[str] = (),
    setup: bool = True,
    **more: Any,
) -> None:
    """``settings.configure`` as every benchmark wants it, then ``django.setup()``.

    No DEBUG (it would record queries), no statistics flush thread (its commands would
    count as the candidates'), no logging configuration; ``default`` is a LocMemCache
    unless ``caches`` names one.
    """
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        INSTALLED_APPS=[*apps, "django_creator_cache"],
        CACHES={"default": {"BACKEND": BACKENDS["locmem"]}, **caches},
        CACHE_STATS_FLUSH_INTERVAL=0,
        LOGGING_CONFIG=None,
        **more,
    )
    if setup:
        django.setup()


def redis_errors(*caches: Any) -> int:
    """Redis errors our backends counted (``runtime.counters``)."""
    return sum(int(cache.runtime.counters.errors) for cache in caches)


def require_no_errors(*caches: Any) -> None:
    errors = redis_errors(*caches)
    if errors:
        raise SystemExit(f"our backend counted {errors} Redis errors during the run")


Response = tuple[str, dict[str, str], bytes]


def wsgi_requester(
    path: str, server_name: str = "testserver", extra: dict[str, str] | None = None
) -> Callable[[], Response]:
    """One GET of ``path`` through Django's full WSGI handler, as a WSGI server makes it."""
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()
    base: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        "SERVER_NAME": server_name,
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        **(extra or {}),
    }
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        started["status"], started["headers"] = status, headers

    def get() -> Response:
        environ = {**base, "wsgi.input": io.BytesIO()}  # a fresh dict: it becomes request.META
        response = handler(environ, start_response)
        try:
            body = b"".join(response)
        finally:
            response.close()
        return started["status"], dict(started["headers"]), body

    return get


def payload(size: int) -> str:
    """A str of ``size`` ASCII characters (pickles to ``size`` + ~15 bytes)."""
    return "".join(chr(33 + (i * 7) % 90) for i in range(size))


# -- timing ---------------------------------------------------------------------------------------


def run_cell(call: Callable[[], Any], iterations: int) -> tuple[float, Any]:
    """Seconds for ``iterations`` calls, and the last call's result."""
    start = time.perf_counter()
    for _ in repeat(None, iterations - 1):
        call()
    last = call()
    return time.perf_counter() - start, last


def checked(
    call: Callable[[], Any], iterations: int, ok: Callable[[Any], bool], what: str
) -> tuple[int, float]:
    """One slice for :func:`interleaved`: (calls, seconds); the last result must be ``ok``."""
    seconds, last = run_cell(call, iterations)
    if not ok(last):
        raise SystemExit(f"{what}: unexpected result {last!r}")
    return iterations, seconds


def rotated(names: Sequence[T], shift: int) -> list[T]:
    """``names`` starting at ``shift`` (A B C, B C A, ...): who goes first changes."""
    shift %= len(names)
    return [*names[shift:], *names[:shift]]


def progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def interleaved(
    rows: Iterable[R],
    runners: Callable[[R], Sequence[str]],
    run: Callable[[R, str], tuple[int, float]],
    *,
    rounds: int,
    slices: int,
    label: str = "",
) -> dict[R, dict[str, list[float]]]:
    """Calls per second of every runner on every row, one figure per round.

    In each round every row is run by each of its ``runners(row)`` in ``slices`` slices,
    the order rotated every slice and every round; ``run(row, name)`` runs one slice and
    returns (calls made, seconds). A round's figure is calls / seconds over its slices.
    """
    rows = list(rows)
    results = {row: {name: [] for name in runners(row)} for row in rows}
    for round_no in range(rounds):
        gc.collect()
        for row in rows:
            names = runners(row)
            calls, spent = dict.fromkeys(names, 0), dict.fromkeys(names, 0.0)
            for slice_no in range(slices):
                for name in rotated(names, round_no + slice_no):
                    made, seconds = run(row, name)
                    calls[name] += made
                    spent[name] += seconds
            for name in names:
                results[row][name].append(calls[name] / spent[name])
        progress(f"{label}round {round_no + 1}/{rounds} done")
    return results


def median_ratio(tops: Sequence[float], bottoms: Sequence[float]) -> float:
    """The median over rounds of the per-round ratio ``tops[i] / bottoms[i]``."""
    return statistics.median(a / b for a, b in zip(tops, bottoms, strict=True))


def spend(
    calls: dict[Any, Callable[[], bool]], limit: int, label: Callable[[Any], str] = str
) -> None:
    """Use up the limit of every rate-limit candidate: ``limit`` checks allowed, then refused."""
    for candidate, call in calls.items():
        results = [call() for _ in range(limit + 1)]
        if results != [True] * limit + [False]:
            raise SystemExit(
                f"{label(candidate)}: limit {limit} not enforced ({results.count(True)} allowed)"
            )


def require_keys(server: RedisServer, patterns: dict[str, str]) -> None:
    """Every candidate (name: key pattern) must have written on the benchmark server."""
    client = server.client()
    for name, pattern in patterns.items():
        if not any(True for _ in client.scan_iter(match=pattern, count=1000)):
            raise SystemExit(f"no {name} keys ({pattern}) on the benchmark server")


# -- what a call costs in Redis -------------------------------------------------------------------

READINGS = frozenset({"info", "hello", "client|setinfo"})
"""Commands the reading of ``INFO commandstats`` itself runs (on its own connection)."""


def commands_during(server: RedisServer, action: Callable[[], Any]) -> dict[str, int]:
    """Commands Redis ran while ``action`` ran (``INFO commandstats`` delta, a Lua
    script's own commands included; the readings removed)."""
    before = server.commandstats()
    action()
    after = server.commandstats()
    delta = {name: after[name] - before.get(name, 0) for name in after}
    return {name: n for name, n in sorted(delta.items()) if n and name not in READINGS}


def per_call(counts: dict[str, int], calls: int) -> dict[str, float]:
    return {name: n / calls for name, n in counts.items()}


@dataclass
class Cost:
    """What one call costs, averaged over a number of calls."""

    round_trips: float  # socket writes (a pipeline is one)
    sent: dict[str, float]  # commands the client packed, by name
    executed: dict[str, float]  # commands Redis ran (INFO commandstats), scripts' included


def measure_cost(server: RedisServer, call: Callable[[], Any], calls: int) -> Cost:
    """Round trips and commands of ``calls`` calls of ``call``, per call."""
    import redis.connection

    writes = [0]
    sent: Counter[str] = Counter()
    originals = {
        "send": redis.connection.AbstractConnection.send_packed_command,
        "hiredis": redis.connection.HiredisRespSerializer.pack,
        "python": redis.connection.PythonRespSerializer.pack,
    }

    def send(conn: Any, command: Any, check_health: bool = True) -> None:
        writes[0] += 1
        originals["send"](conn, command, check_health)

    def packer(original: Callable[..., Any]) -> Callable[..., Any]:
        def pack(self: Any, *args: Any) -> Any:
            name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
            sent[name.split()[0].lower()] += 1
            return original(self, *args)

        return pack

    # Our transactions pack their commands with hiredis directly (backend.direct).
    from django_creator_cache.backend import direct

    direct_pack = direct._hiredis_pack

    def counted(command: Any) -> bytes:
        name = command[0].decode() if isinstance(command[0], bytes) else str(command[0])
        sent[name.split()[0].lower()] += 1
        assert direct_pack is not None
        return direct_pack(command)

    def many() -> None:
        redis.connection.AbstractConnection.send_packed_command = send
        redis.connection.HiredisRespSerializer.pack = packer(originals["hiredis"])
        redis.connection.PythonRespSerializer.pack = packer(originals["python"])
        if direct_pack is not None:
            direct._hiredis_pack = counted
        try:
            for _ in range(calls):
                call()
        finally:
            redis.connection.AbstractConnection.send_packed_command = originals["send"]
            redis.connection.HiredisRespSerializer.pack = originals["hiredis"]
            redis.connection.PythonRespSerializer.pack = originals["python"]
            direct._hiredis_pack = direct_pack

    executed = commands_during(server, many)
    return Cost(writes[0] / calls, per_call(dict(sent), calls), per_call(executed, calls))


def fmt_commands(per_check: dict[str, float]) -> str:
    """``2: SET, EVALSHA`` (total per call, then each command; xn when not once)."""
    total = sum(per_check.values())
    names = sorted(per_check, key=lambda name: (-per_check[name], name))
    parts = [n.upper() if per_check[n] == 1 else f"{n.upper()}x{per_check[n]:.3g}" for n in names]
    return f"{total:.3g}: " + ", ".join(parts)


# -- reporting ------------------------------------------------------------------------------------


def fmt_ops(value: float) -> str:
    return f"{value:,.0f}"


def fmt_ratio(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}x"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> str:
    """A Markdown table; ``align`` has one letter per column, ``r`` for right-aligned
    (``--:``), anything else left (``---``); missing letters mean left."""
    marks = ["--:" if align[i : i + 1] == "r" else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


DISTRIBUTIONS = {
    "Django": "django",
    "DRF": "djangorestframework",
    "redis-py": "redis",
    "hiredis": "hiredis",
    "django-redis": "django-redis",
    "django-ratelimit": "django-ratelimit",
    "gunicorn": "gunicorn",
    "asgiref": "asgiref",
}


def versions(names: Sequence[str], redis_version: str | None = None) -> dict[str, str]:
    """Python, the packages ``names`` (keys of :data:`DISTRIBUTIONS`) and Redis."""
    found = {"Python": platform.python_version()}
    found.update((name, version(DISTRIBUTIONS[name])) for name in names)
    if redis_version is not None:
        found["Redis"] = redis_version
    return found


def server_version(server: RedisServer) -> str:
    return str(server.info("server")["redis_version"])


def finish(
    args: argparse.Namespace,
    meta: dict[str, str],
    document: dict[str, Any],
    *,
    method: str,
    timed: float | None = None,
    ran: float | None = None,
    pinned: str | int | None = None,
    tables: Sequence[str] = (),
) -> int:
    """Print ``tables``, then the lines under them (versions, pinning, method, time and
    command); write ``document`` with them to ``--json`` if given; return 0, the exit status.

    ``timed``: seconds of the timed part, or ``ran``: of the whole run. ``pinned``: a CPU
    number or None (pinned like :func:`pinned_server`), or a sentence; benchmarks without
    pinning options print no pinning line."""
    for table in tables:
        print()
        print(table)
    if tables:
        print()
    print("Versions: " + ", ".join(f"{name} {value}" for name, value in meta.items()))
    if hasattr(args, "pin"):
        spelled = pinned if isinstance(pinned, str) else pinned_text(pinned)
        print(f"Pinned: {spelled}")
    print(f"Method: {method}")
    took = f"Timed part: {timed:.0f} s" if timed is not None else f"Run time: {ran or 0:.0f} s"
    print(f"{took}. Command: {command_line()}")
    pins = hasattr(args, "pin") and (pinned is None or isinstance(pinned, int))
    extra = {"pinned_cpu": pinned} if pins else {}
    write_json(getattr(args, "json", None), {"versions": meta, **extra, **document})
    return 0


def write_json(path: str | None, document: dict[str, Any]) -> None:
    """Write the results with the command that produced them (nothing without ``--json``)."""
    if path:
        Path(path).write_text(
            json.dumps({"command": command_line(), **document}, indent=2, default=str) + "\n"
        )


# -- what a call costs the server -----------------------------------------------------------------

BACKGROUND = frozenset({*READINGS, "config|resetstat", "ping", "role", "client|tracking"})
"""Commands that are not the measured calls' own: the readings, the reset, heartbeats
(a local tier's ``PING``/``ROLE``) and connection set-up."""


def server_cpu(server: RedisServer, action: Callable[[], Any]) -> dict[str, tuple[int, int]]:
    """Redis's own CPU for what ``action`` made it run: ``{command: (calls, usec)}`` from
    ``INFO commandstats`` after a ``CONFIG RESETSTAT`` (a script's own commands appear
    both under ``evalsha``/``fcall`` and under their names, as Redis counts them);
    :data:`BACKGROUND` commands left out."""
    client = server.client()
    client.config_resetstat()
    action()
    stats = client.info("commandstats")
    found = {}
    for name, values in stats.items():
        command = name.removeprefix("cmdstat_")
        if command not in BACKGROUND and not command.startswith("client|"):
            found[command] = (int(values["calls"]), int(values["usec"]))
    return found
