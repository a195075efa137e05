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
the server are pinned to one CPU (see ``harness.py``).

Run from the repository root::

    python benchmarks/invalidation_bench.py [--sizes 1000,10000,100000] [--repeat 3]
                                            [--no-pin] [--cpu N] [--json results.json]
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness

PREFIX = "campaigns"
KEY_PREFIX = "bench"
TIMEOUT = 3600
BATCH = 1000
VALUE = {"id": 1, "name": "Campaign", "budget": "1999.99", "views": 123456}


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
    harness.configure_django(
        {
            "ours": harness.cache_entry(
                "ours", url, KEY_PREFIX, {"INVALIDATION_PREFIXES": [PREFIX]}
            ),
            "django_redis": harness.cache_entry("django-redis", url, KEY_PREFIX),
        }
    )


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


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Cell:
    """Measurements of one candidate at one size, one per repetition."""

    ms: list[float]
    write_s: list[float]
    deleted: list[int]
    commands: list[dict[str, int]]


def measure(size: int, repeat: int, server: Any, raw: Any, caches: Any) -> dict[str, Cell]:
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
        for candidate in harness.rotated(CANDIDATES, round_no):
            cache = caches[candidate.alias]
            cell = cells[candidate.name]
            cell.write_s.append(write(cache, entries))
            if existing(raw, entries_full) != size:
                raise SystemExit(f"{candidate.name}: the {size} entries were not all written")
            gc.collect()
            timing: dict[str, Any] = {}

            def invalidate(
                candidate: Candidate = candidate, cache: Any = cache, out: Any = timing
            ) -> None:
                start = time.perf_counter()
                out["deleted"] = candidate.invalidate(cache)
                out["seconds"] = time.perf_counter() - start

            commands = harness.commands_during(server, invalidate)
            deleted, seconds = timing["deleted"], timing["seconds"]
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
            cell.commands.append(commands)
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
    lines, rows = [], []
    for size, cells in results.items():
        ours_ms = statistics.median(cells[CANDIDATES[0].name].ms)
        for candidate in CANDIDATES:
            cell = cells[candidate.name]
            ms = statistics.median(cell.ms)
            lines.append(
                [
                    f"{size:,}",
                    candidate.name,
                    f"{ms:,.1f}",
                    harness.fmt_ratio(ms / ours_ms, 1),
                    f"{statistics.median(cell.deleted):,.0f}",
                    fmt_commands(cell.commands),
                    f"{statistics.median(cell.write_s):.2f} s",
                ]
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
    header = [
        "entries under the prefix (+ as many unrelated keys)",
        "candidate",
        "ms per invalidation",
        "vs ours",
        "keys deleted",
        "Redis commands per invalidation",
        "writing the entries",
    ]
    return harness.markdown_table(header, lines, "rlrrrlr"), rows


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> Any:
    parser = harness.arguments(__doc__)
    parser.add_argument(
        "--sizes",
        default="1000,10000,100000",
        help="entries under the prefix, comma separated (default 1000,10000,100000)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="repetitions per size and candidate (default 3)"
    )
    args = harness.parse(parser, argv, ("repeat",))
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not args.sizes or min(args.sizes) < 2:
        raise SystemExit("--sizes must be numbers >= 2")
    return args


def bench(args: Any, server: Any, cpu: int | None) -> int:
    configure_django(server.url)
    from django.core.cache import caches

    raw = server.client()
    if not caches["ours"].tracks_prefix(PREFIX):
        raise SystemExit(f"our backend does not track {PREFIX!r}: check INVALIDATION_PREFIXES")
    # Warm-up: connections, and our Lua script loaded (its first EVALSHA would fail once).
    for candidate in CANDIDATES:
        cache = caches[candidate.alias]
        write(cache, entry_keys(10))
        if candidate.invalidate(cache) != 10:
            raise SystemExit(f"{candidate.name}: the warm-up did not delete its 10 entries")
    print(f"# invalidation benchmark: sizes {args.sizes}, {args.repeat} repetitions", flush=True)
    started = time.perf_counter()
    results = {}
    for size in args.sizes:
        results[size] = measure(size, args.repeat, server, raw, caches)
        harness.progress(f"{size:,} done")
    duration = time.perf_counter() - started
    harness.require_no_errors(caches["ours"])

    text, rows = table(results)
    meta = harness.versions(("Django", "redis-py", "django-redis"), harness.server_version(server))
    return harness.finish(
        args,
        meta,
        {"rows": rows},
        tables=[text],
        pinned=cpu,
        method=f"per size, N unrelated keys stay in the database; each repetition, every "
        f"candidate writes N entries (set_many, batches of {BATCH}, TTL {TIMEOUT} s) and "
        f"deletes them; median of {args.repeat} repetitions; every deletion checked (count, "
        "entries gone, unrelated keys kept, database size back to before).",
        ran=duration,
    )


def main(argv: list[str] | None = None) -> int:
    return harness.run_pinned(parse_args(argv), bench)


if __name__ == "__main__":
    sys.exit(main())
