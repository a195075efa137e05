#!/usr/bin/env python
"""Prefix invalidation: ``invalidate_prefix`` (indexed) against ``delete_pattern`` (SCAN).

Same redis-server, same run, same keyspace. For each size N (1k, 10k, 100k) the
database holds N unrelated keys (half under ``other:``, half under
``campaigns-archive:``, which a careless glob would catch), and each candidate in
turn writes N entries under ``campaigns:`` with ``set_many`` in batches of 1,000,
then deletes them:

* ``ours invalidate_prefix``: ``django_creator_cache.backend.RedisCache`` with
  ``OPTIONS["INVALIDATION_PREFIXES"] = ["campaigns"]`` (writes join the prefix's
  index), ``cache.invalidate_prefix("campaigns")``;
* ``django-redis delete_pattern``: ``django_redis.cache.RedisCache``,
  ``cache.delete_pattern("campaigns:*")`` with its default SCAN ``itersize`` (10,
  ``DJANGO_REDIS_SCAN_ITERSIZE``), and again with ``itersize=1000``.

Both backends build keys the same way (``bench:1:campaigns:<n>``), so they
write and delete the very same key names. After every invalidation the script
checks that the count returned is N, that none of the N entries exists, that
all N unrelated keys do, and that the database is back to its size before the
write (no index or other leftovers). Redis commands per invalidation are the
``INFO commandstats`` delta around it (the INFO calls themselves removed).
Reported per candidate and size: the median over ``--repeat`` repetitions of
the time of one invalidation, re-populating before each; and, for scale, the
median time the candidate took to write the N entries. Candidates alternate
(order rotated every repetition). The script starts its own redis-server (free
port on 127.0.0.1, temp dir, no persistence) and stops it; by default it and
the server are pinned to one CPU (see ``backend_bench.py``).

Run from the repository root::

    python benchmarks/invalidation_bench.py [--sizes 1000,10000,100000] [--repeat 3]
                                            [--no-pin] [--cpu N] [--json results.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.backend_bench import start_server  # noqa: E402

PREFIX = "campaigns"
KEY_PREFIX = "bench"
TIMEOUT = 3600
BATCH = 1000
VALUE = {"id": 1, "name": "Campaign", "budget": "1999.99", "views": 123456}
# Commands the measuring itself causes on the server.
BACKGROUND = frozenset({"info", "hello"})


@dataclass(frozen=True)
class Candidate:
    """One way to drop every entry under the prefix."""

    name: str
    alias: str
    invalidate: Callable[[Any], int]


CANDIDATES = (
    Candidate("ours `invalidate_prefix`", "ours", lambda c: int(c.invalidate_prefix(PREFIX))),
    Candidate(
        "django-redis `delete_pattern` (itersize 10, its default)",
        "django_redis",
        lambda c: int(c.delete_pattern(f"{PREFIX}:*")),
    ),
    Candidate(
        "django-redis `delete_pattern(itersize=1000)`",
        "django_redis",
        lambda c: int(c.delete_pattern(f"{PREFIX}:*", itersize=1000)),
    ),
)


def configure_django(url: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        INSTALLED_APPS=["django_creator_cache"],
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "ours": {
                "BACKEND": "django_creator_cache.backend.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": KEY_PREFIX,
                "OPTIONS": {"INVALIDATION_PREFIXES": [PREFIX]},
            },
            "django_redis": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": KEY_PREFIX,
            },
        },
        CACHE_STATS_FLUSH_INTERVAL=0,
        LOGGING_CONFIG=None,
    )
    django.setup()


# -- data and checks --------------------------------------------------------------------------


def entry_keys(n: int) -> list[str]:
    return [f"{PREFIX}:{i}" for i in range(n)]


def unrelated_keys(n: int) -> list[str]:
    half = n // 2
    return [f"other:{i}" for i in range(half)] + [f"{PREFIX}-archive:{i}" for i in range(n - half)]


def write(cache: Any, keys: list[str]) -> float:
    """Seconds to write ``keys`` with ``set_many`` in batches of ``BATCH``."""
    start = time.perf_counter()
    for at in range(0, len(keys), BATCH):
        failed = cache.set_many(dict.fromkeys(keys[at : at + BATCH], VALUE), TIMEOUT)
        if failed:
            raise SystemExit(f"set_many failed for {len(failed)} keys")
    return time.perf_counter() - start


def existing(raw: Any, full_keys: list[str]) -> int:
    """How many of ``full_keys`` exist (EXISTS in batches)."""
    return sum(
        int(raw.exists(*full_keys[at : at + 10_000])) for at in range(0, len(full_keys), 10_000)
    )


def commandstats(raw: Any) -> dict[str, int]:
    stats = raw.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    found = {name: after[name] - before.get(name, 0) for name in after}
    return {name: n for name, n in found.items() if n and name not in BACKGROUND}


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Cell:
    """Measurements of one candidate at one size, one per repetition."""

    ms: list[float]
    write_s: list[float]
    deleted: list[int]
    commands: list[dict[str, int]]


def measure(size: int, repeat: int, raw: Any, caches: Any) -> dict[str, Cell]:
    ours = caches["ours"]
    raw.flushdb()
    unrelated = unrelated_keys(size)
    write(ours, unrelated)  # untracked prefixes: plain SETs, no index
    unrelated_full = [ours.make_key(k) for k in unrelated]
    entries = entry_keys(size)
    entries_full = [ours.make_key(k) for k in entries]
    if entries_full != [caches["django_redis"].make_key(k) for k in entries]:
        raise SystemExit("the two backends do not build the same key names")
    baseline = int(raw.dbsize())
    if baseline != size:
        raise SystemExit(f"expected {size} unrelated keys, found {baseline}")

    cells = {c.name: Cell([], [], [], []) for c in CANDIDATES}
    for round_no in range(repeat):
        shift = round_no % len(CANDIDATES)
        for candidate in CANDIDATES[shift:] + CANDIDATES[:shift]:
            cache = caches[candidate.alias]
            cell = cells[candidate.name]
            cell.write_s.append(write(cache, entries))
            if existing(raw, entries_full) != size:
                raise SystemExit(f"{candidate.name}: the {size} entries were not all written")
            gc.collect()
            before = commandstats(raw)
            start = time.perf_counter()
            deleted = candidate.invalidate(cache)
            seconds = time.perf_counter() - start
            after = commandstats(raw)
            # Exactly the entries under the prefix, and nothing else.
            if deleted != size:
                raise SystemExit(f"{candidate.name}: returned {deleted}, expected {size}")
            if existing(raw, entries_full):
                raise SystemExit(f"{candidate.name}: entries under the prefix survived")
            if existing(raw, unrelated_full) != size:
                raise SystemExit(f"{candidate.name}: unrelated keys were deleted")
            if int(raw.dbsize()) != baseline:
                raise SystemExit(f"{candidate.name}: {int(raw.dbsize()) - baseline} keys left over")
            cell.ms.append(seconds * 1000)
            cell.deleted.append(deleted)
            cell.commands.append(delta(before, after))
    return cells


# -- reporting ----------------------------------------------------------------------------------


def fmt_commands(commands: list[dict[str, int]]) -> str:
    """Median total per invalidation, and its make-up (e.g. ``3 (EVALSHA 1, DEL 2)``)."""
    totals = [sum(c.values()) for c in commands]
    names = sorted({name for c in commands for name in c}, key=lambda n: -commands[0].get(n, 0))
    medians = {n: statistics.median(c.get(n, 0) for c in commands) for n in names}
    parts = [f"{n.upper()} {m:,.0f}" for n, m in medians.items() if m]
    return f"{statistics.median(totals):,.0f} ({', '.join(parts)})"


def table(results: dict[int, dict[str, Cell]]) -> tuple[str, list[dict[str, Any]]]:
    lines = [
        "| entries under the prefix (+ as many unrelated keys) | candidate | ms per invalidation "
        "| vs ours | keys deleted | Redis commands per invalidation | writing the entries |",
        "|--:|---|--:|--:|--:|---|--:|",
    ]
    rows = []
    for size, cells in results.items():
        ours_ms = statistics.median(cells[CANDIDATES[0].name].ms)
        for candidate in CANDIDATES:
            cell = cells[candidate.name]
            ms = statistics.median(cell.ms)
            lines.append(
                f"| {size:,} | {candidate.name} | {ms:,.1f} | {ms / ours_ms:.1f}x "
                f"| {statistics.median(cell.deleted):,.0f} | {fmt_commands(cell.commands)} "
                f"| {statistics.median(cell.write_s):.2f} s |"
            )
            rows.append(
                {
                    "size": size,
                    "candidate": candidate.name,
                    "ms": cell.ms,
                    "write_s": cell.write_s,
                    "deleted": cell.deleted,
                    "commands": cell.commands,
                }
            )
    return "\n".join(lines), rows


def versions(raw: Any) -> dict[str, str]:
    import django
    import django_redis
    import redis

    return {
        "python": platform.python_version(),
        "django": django.get_version(),
        "redis-py": redis.__version__,
        "django-redis": django_redis.__version__,
        "redis-server": raw.info("server")["redis_version"],
    }


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="1000,10000,100000",
        help="entries under the prefix, comma separated (default 1000,10000,100000)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="repetitions per size and candidate (default 3)"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin this process and redis-server to one CPU"
    )
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or min(sizes) < 2 or args.repeat < 1:
        raise SystemExit("--sizes must be numbers >= 2 and --repeat positive")
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    cpu: int | None = None
    if not args.no_pin:
        cpu = max(os.sched_getaffinity(0)) if args.cpu is None else args.cpu
        os.sched_setaffinity(0, {cpu})

    server = start_server(cpu)
    try:
        return bench(args, sizes, server, cpu, command)
    finally:
        server.close()


def bench(
    args: argparse.Namespace, sizes: list[int], server: Any, cpu: int | None, command: str
) -> int:
    import redis

    configure_django(server.url)
    from django.core.cache import caches

    raw = redis.Redis(host=server.host, port=server.port)
    if not caches["ours"].tracks_prefix(PREFIX):
        raise SystemExit(f"our backend does not track {PREFIX!r}: check INVALIDATION_PREFIXES")
    # Warm-up: connections, and our Lua script loaded (its first EVALSHA would fail once).
    for candidate in CANDIDATES:
        cache = caches[candidate.alias]
        write(cache, entry_keys(10))
        if candidate.invalidate(cache) != 10:
            raise SystemExit(f"{candidate.name}: the warm-up did not delete its 10 entries")
    print(f"# invalidation benchmark: sizes {sizes}, {args.repeat} repetitions", flush=True)
    started = time.perf_counter()
    results = {}
    for size in sizes:
        results[size] = measure(size, args.repeat, raw, caches)
        print(f"  {size:,} done", file=sys.stderr, flush=True)
    duration = time.perf_counter() - started
    errors = caches["ours"]._counters.errors
    if errors:
        raise SystemExit(f"our backend counted {errors} Redis errors during the run")

    text, rows = table(results)
    meta = versions(raw)
    pinned = f"yes, benchmark and redis-server on CPU {cpu}" if cpu is not None else "no"
    print()
    print(text)
    print()
    print(
        "Versions: Python {python}, Django {django}, redis-py {redis-py}, "
        "django-redis {django-redis}, Redis {redis-server}".format(**meta)
    )
    print(f"Pinned: {pinned}")
    print(
        f"Method: per size, N unrelated keys stay in the database; each repetition, every "
        f"candidate writes N entries (set_many, batches of {BATCH}, TTL {TIMEOUT} s) and "
        f"deletes them; median of {args.repeat} repetitions; every deletion checked (count, "
        "entries gone, unrelated keys kept, database size back to before)."
    )
    print(f"Run time: {duration:.0f} s. Command: {command}")
    if args.json:
        document = {"command": command, "pinned_cpu": cpu, "versions": meta, "rows": rows}
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
