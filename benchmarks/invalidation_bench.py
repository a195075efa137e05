#!/usr/bin/env python
"""Invalidation: what tracking costs the writes and the memory, and what it buys.

Three tables, same run, our backend against itself and against django-redis:

1. **Writes**: ``set`` of one key and ``set_many`` of 500 keys under ``campaigns:``, with
   tracking on (the default: every write joins its root's index in the same Lua
   script) and off (``OPTIONS["TRACK_WRITES"] = False``: plain ``SET``s), on one
   redis-server and on a 3-primary Redis Cluster; interleaved slices, the median over
   rounds of the per-round ratio.
2. **Memory**: ``INFO memory`` ``used_memory`` (summed over a Cluster's primaries) before
   and after writing ``--entries`` (20,000) entries of 100 B and of 1 KB, tracked and
   untracked, each on an emptied database: bytes per entry and their ratio.
3. **Invalidation**: for each size N (1k, 10k, 100k) the database holds N unrelated keys
   (half under ``other:``, half under ``campaigns-archive:``, which a careless glob
   would catch), and each candidate in turn writes N entries under ``campaigns:`` with
   ``set_many`` in batches of 1,000, then deletes them: ours ``invalidate_prefix``
   against django-redis ``delete_pattern("campaigns:*")`` with its default SCAN
   ``itersize`` (10) and with ``itersize=1000``. A last row keeps 1,000 entries in a
   keyspace of ``--flat`` (100,000) unrelated keys: ours stays where it was at 1,000,
   a SCAN does not. After every invalidation the script checks the count returned,
   that none of the entries exists, that all unrelated keys do, and that the user keys
   are back to the unrelated ones (our index bookkeeping, in its own namespace, is left
   out of that count). Redis commands per invalidation are the ``INFO commandstats``
   delta around it.

Both backends build keys the same way (``bench:1:campaigns:<n>``). The script starts
its own redis-server (free port on 127.0.0.1, temp dir, no persistence) pinned with
itself to one CPU (see ``harness.py``), and a Cluster (``tests.redis_servers``,
unpinned: its rows are ratios within the Cluster) unless ``--no-cluster``.

Run from the repository root::

    python benchmarks/invalidation_bench.py [--sizes 1000,10000,100000] [--repeat 3]
        [--flat 100000] [--entries 20000] [--rounds 5] [--no-cluster]
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
MANY = 500
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


def configure_django(url: str, cluster: Any) -> None:
    entries = {
        "ours": harness.cache_entry("ours", url, KEY_PREFIX),
        "untracked": harness.cache_entry("ours", url, KEY_PREFIX, {"TRACK_WRITES": False}),
        "django_redis": harness.cache_entry("django-redis", url, KEY_PREFIX),
    }
    if cluster is not None:
        on = {"MODE": "cluster"}
        entries["cluster"] = harness.cache_entry("ours", cluster.location, KEY_PREFIX, on)
        entries["cluster_untracked"] = harness.cache_entry(
            "ours", cluster.location, KEY_PREFIX, {**on, "TRACK_WRITES": False}
        )
    harness.configure_django(entries)


# -- data and checks --------------------------------------------------------------------------


def entry_keys(n: int) -> list[str]:
    return [f"{PREFIX}:{i}" for i in range(n)]


def unrelated_keys(n: int) -> list[str]:
    half = n // 2
    return [f"other:{i}" for i in range(half)] + [f"{PREFIX}-archive:{i}" for i in range(n - half)]


def write(cache: Any, keys: list[str], value: Any = VALUE) -> float:
    """Seconds to write ``keys`` with ``set_many`` in batches of ``BATCH``."""
    start = time.perf_counter()
    for at in range(0, len(keys), BATCH):
        failed = cache.set_many(dict.fromkeys(keys[at : at + BATCH], value), TIMEOUT)
        if failed:
            raise SystemExit(f"set_many failed for {len(failed)} keys")
    return time.perf_counter() - start


def existing(raw: Any, full_keys: list[str]) -> int:
    """How many of ``full_keys`` exist (EXISTS in batches)."""
    return sum(
        int(raw.exists(*full_keys[at : at + 10_000])) for at in range(0, len(full_keys), 10_000)
    )


def user_keys(raw: Any) -> int:
    """Keys in the database outside our bookkeeping namespace (``bench:dcc:``)."""
    return int(raw.dbsize()) - sum(
        1 for _ in raw.scan_iter(match=f"{KEY_PREFIX}:dcc:*", count=5000)
    )


# -- 1. writes ------------------------------------------------------------------------------------


def write_rows(caches: Any, topologies: list[str], rounds: int) -> list[dict[str, Any]]:
    """Calls per second of set and set_many(500), tracked and untracked, per topology."""
    aliases = {"single": ("ours", "untracked"), "cluster": ("cluster", "cluster_untracked")}
    counter = {"n": 0}

    def one(cache: Any) -> tuple[int, float]:
        start = time.perf_counter()
        for _ in range(200):
            counter["n"] = (counter["n"] + 1) % 5000
            cache.set(f"{PREFIX}:one{counter['n']}", VALUE, TIMEOUT)
        return 200, time.perf_counter() - start

    batches = [{f"{PREFIX}:many{b}-{i}": VALUE for i in range(MANY)} for b in range(10)]

    def many(cache: Any) -> tuple[int, float]:
        start = time.perf_counter()
        for batch in batches[:4]:
            if cache.set_many(batch, TIMEOUT):
                raise SystemExit("set_many failed")
        return 4, time.perf_counter() - start

    calls = {"set": one, "set_many": many}
    rows = [(topology, call) for topology in topologies for call in calls]
    for topology, _ in rows:  # warm up: connections, scripts, records of every slot used
        for alias in aliases[topology]:
            for batch in batches:
                caches[alias].set_many(batch, TIMEOUT)
            for _ in range(5000 // 200):  # every key `one` writes (a process in its stride)
                one(caches[alias])
    results = harness.interleaved(
        rows,
        lambda row: ["tracked", "untracked"],
        lambda row, name: calls[row[1]](caches[aliases[row[0]][name == "untracked"]]),
        rounds=rounds,
        slices=4,
        label="writes: ",
    )
    out = []
    for (topology, call), cells in results.items():
        out.append(
            {
                "topology": topology,
                "call": call,
                "tracked_per_s": statistics.median(cells["tracked"]),
                "untracked_per_s": statistics.median(cells["untracked"]),
                # time ratio: untracked calls/s over tracked calls/s, per round
                "time_ratio": harness.median_ratio(cells["untracked"], cells["tracked"]),
            }
        )
    return out


# -- 2. memory ------------------------------------------------------------------------------------


def used_memory(clients: list[Any]) -> int:
    return sum(int(c.info("memory")["used_memory"]) for c in clients)


def memory_rows(
    caches: Any, topologies: list[str], clients: dict[str, list[Any]], entries: int
) -> list[dict[str, Any]]:
    aliases = {"single": ("ours", "untracked"), "cluster": ("cluster", "cluster_untracked")}
    keys = entry_keys(entries)
    out = []
    for topology in topologies:
        nodes = clients[topology]
        for size in (100, 1024):
            value = harness.payload(size - 15)  # pickles to about ``size`` bytes
            per: dict[str, float] = {}
            for alias, label in zip(aliases[topology], ("tracked", "untracked"), strict=True):
                for node in nodes:
                    node.flushall()
                gc.collect()
                time.sleep(0.2)
                before = used_memory(nodes)
                write(caches[alias], keys, value)
                after = used_memory(nodes)
                per[label] = (after - before) / entries
            out.append(
                {
                    "topology": topology,
                    "value_bytes": size,
                    "tracked_bytes": per["tracked"],
                    "untracked_bytes": per["untracked"],
                    "ratio": per["tracked"] / per["untracked"],
                }
            )
            harness.progress(f"memory {topology} {size} B done")
    for topology in topologies:
        for node in clients[topology]:
            node.flushall()
    return out


# -- 3. invalidation ----------------------------------------------------------------------------


@dataclass
class Cell:
    """Measurements of one candidate at one size, one per repetition."""

    ms: list[float]
    write_s: list[float]
    deleted: list[int]
    commands: list[dict[str, int]]


def measure(
    size: int, unrelated_n: int, repeat: int, server: Any, raw: Any, caches: Any
) -> dict[str, Cell]:
    ours = caches["ours"]
    raw.flushdb()
    unrelated = unrelated_keys(unrelated_n)
    write(caches["untracked"], unrelated)  # plain SETs: only the entries are indexed
    unrelated_full = [ours.make_key(k) for k in unrelated]
    entries = entry_keys(size)
    entries_full = [ours.make_key(k) for k in entries]
    if entries_full != [caches["django_redis"].make_key(k) for k in entries]:
        raise SystemExit("the two backends do not build the same key names")
    baseline = user_keys(raw)
    if baseline != unrelated_n:
        raise SystemExit(f"expected {unrelated_n} unrelated keys, found {baseline}")

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
            if existing(raw, unrelated_full) != unrelated_n:
                raise SystemExit(f"{candidate.name}: unrelated keys were deleted")
            if user_keys(raw) != baseline:
                raise SystemExit(f"{candidate.name}: {user_keys(raw) - baseline} keys left over")
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


def invalidation_table(
    results: dict[tuple[int, int], dict[str, Cell]],
) -> tuple[str, list[dict[str, Any]]]:
    lines, rows = [], []
    for (size, unrelated), cells in results.items():
        ours_ms = statistics.median(cells[CANDIDATES[0].name].ms)
        for candidate in CANDIDATES:
            cell = cells[candidate.name]
            ms = statistics.median(cell.ms)
            lines.append(
                [
                    f"{size:,}",
                    f"{unrelated:,}",
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
                    "unrelated": unrelated,
                    "candidate": candidate.name,
                    "ms": cell.ms,
                    "write_s": cell.write_s,
                    "deleted": cell.deleted,
                    "commands": cell.commands,
                }
            )
    header = [
        "entries under the prefix",
        "unrelated keys",
        "candidate",
        "ms per invalidation",
        "vs ours",
        "keys deleted",
        "Redis commands per invalidation",
        "writing the entries",
    ]
    return harness.markdown_table(header, lines, "rrlrrrlr"), rows


def write_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        [
            row["topology"],
            "`set`" if row["call"] == "set" else f"`set_many` ({MANY} entries)",
            harness.fmt_ops(row["tracked_per_s"]),
            harness.fmt_ops(row["untracked_per_s"]),
            harness.fmt_ratio(row["time_ratio"]),
        ]
        for row in rows
    ]
    header = ["topology", "call", "tracked calls/s", "untracked calls/s", "time tracked/untracked"]
    return harness.markdown_table(header, lines, "llrrr")


def memory_table(rows: list[dict[str, Any]], entries: int) -> str:
    lines = [
        [
            row["topology"],
            f"{row['value_bytes']:,} B",
            f"{row['untracked_bytes']:,.0f}",
            f"{row['tracked_bytes']:,.0f}",
            harness.fmt_ratio(row["ratio"]),
        ]
        for row in rows
    ]
    header = [
        f"topology ({entries:,} entries)",
        "value",
        "bytes per entry, untracked",
        "bytes per entry, tracked",
        "tracked / untracked",
    ]
    return harness.markdown_table(header, lines, "llrrr")


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> Any:
    parser = harness.arguments(__doc__, rounds=5)
    parser.add_argument(
        "--sizes",
        default="1000,10000,100000",
        help="entries under the prefix, comma separated (default 1000,10000,100000)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="repetitions per size and candidate (default 3)"
    )
    parser.add_argument(
        "--flat",
        type=int,
        default=100_000,
        help="unrelated keys around 1,000 entries in the last row (default 100000; 0: none)",
    )
    parser.add_argument(
        "--entries", type=int, default=20_000, help="entries per memory cell (default 20000)"
    )
    parser.add_argument("--no-cluster", action="store_true", help="single server only")
    args = harness.parse(parser, argv, ("repeat", "entries"))
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not args.sizes or min(args.sizes) < 2:
        raise SystemExit("--sizes must be numbers >= 2")
    return args


def bench(args: Any, server: Any, cpu: int | None) -> int:
    cluster = None
    if not args.no_cluster:
        from tests.redis_servers import RedisCluster

        cluster = RedisCluster()
        cluster.start()
    try:
        return run(args, server, cpu, cluster)
    finally:
        if cluster is not None:
            cluster.stop()


def run(args: Any, server: Any, cpu: int | None, cluster: Any) -> int:
    configure_django(server.url, cluster)
    from django.core.cache import caches

    raw = server.client()
    topologies = ["single"] if cluster is None else ["single", "cluster"]
    clients = {"single": [raw]}
    if cluster is not None:
        clients["cluster"] = [node.client() for node in cluster.primaries()]
    # Warm-up: connections, and our Lua scripts loaded (a first EVALSHA fails once).
    for candidate in CANDIDATES:
        cache = caches[candidate.alias]
        write(cache, entry_keys(10))
        if candidate.invalidate(cache) != 10:
            raise SystemExit(f"{candidate.name}: the warm-up did not delete its 10 entries")
    print(
        f"# invalidation benchmark: sizes {args.sizes} (+ 1,000 in {args.flat:,}), "
        f"{args.repeat} repetitions; writes {args.rounds} rounds; memory {args.entries:,} "
        f"entries; {', '.join(topologies)}",
        flush=True,
    )
    started = time.perf_counter()
    writes = write_rows(caches, topologies, args.rounds)
    memory = memory_rows(caches, topologies, clients, args.entries)
    results = {}
    shapes = [(size, size) for size in args.sizes] + ([(1000, args.flat)] if args.flat else [])
    for size, unrelated in shapes:
        results[(size, unrelated)] = measure(size, unrelated, args.repeat, server, raw, caches)
        harness.progress(f"{size:,} in {unrelated:,} done")
    duration = time.perf_counter() - started
    harness.require_no_errors(*(caches[a] for a in ("ours", "untracked")))

    text, rows = invalidation_table(results)
    meta = harness.versions(("Django", "redis-py", "django-redis"), harness.server_version(server))
    return harness.finish(
        args,
        meta,
        {"writes": writes, "memory": memory, "rows": rows},
        tables=[write_table(writes), memory_table(memory, args.entries), text],
        pinned=cpu if cluster is None else f"{harness.pinned_text(cpu)}; the Cluster is not",
        method=f"writes: {args.rounds} rounds of 4 interleaved slices (200 sets, or 4 "
        f"set_many of {MANY}), median of the per-round time ratios; memory: used_memory "
        f"delta over {args.entries:,} entries on an emptied database (Cluster: summed over "
        f"its primaries); invalidation: per size, N unrelated keys stay in the database; "
        f"each repetition, every candidate writes N entries (set_many, batches of {BATCH}, "
        f"TTL {TIMEOUT} s) and deletes them; median of {args.repeat} repetitions; every "
        "deletion checked (count, entries gone, unrelated keys kept, user keys back to "
        "before).",
        ran=duration,
    )


def main(argv: list[str] | None = None) -> int:
    return harness.run_pinned(parse_args(argv), bench)


if __name__ == "__main__":
    sys.exit(main())
