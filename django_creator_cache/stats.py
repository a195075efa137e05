"""Cache statistics: the counters each alias keeps (``backend.counters``) and the
keyspace summary the admin page shows.

Each process counts in memory; a daemon thread adds the deltas to one Redis hash per
alias every ``CACHE_STATS_FLUSH_INTERVAL`` seconds, so every process sees the
site-wide totals (``cache.stats()``) while a get or a set pays only an integer
increment.
"""

from __future__ import annotations

from typing import Any

from .backend.counters import COUNTERS, Counters, flush, hit_rate, registry, totals
from .backend.ops.server import parse_info

__all__ = [
    "COUNTERS",
    "NO_PREFIX",
    "Counters",
    "flush",
    "hit_rate",
    "parse_info",
    "prefix_counts",
    "registry",
    "totals",
]

NO_PREFIX = "(no separator)"


def prefix_counts(cache: Any, limit: int) -> tuple[list[tuple[str, int]], int, bool]:
    """Keys per top-level prefix among at most ``limit`` keys of ``cache``'s alias (SCAN).

    Returns ``(counts, sampled, complete)``: counts sorted by size, how many keys
    were looked at, and whether that was all of them (False: the sample stopped
    at ``limit``). Only keys of the alias's ``KEY_PREFIX`` and current version are
    seen; its own bookkeeping (statistics, invalidation indexes) is not.
    """
    separator = cache.key_separator
    counts: dict[str, int] = {}
    sampled = 0
    complete = True
    for key in cache.iter_keys("*", itersize=1000):
        if sampled >= limit:
            complete = False
            break
        sampled += 1
        root = key.split(separator, 1)[0] if separator in key else NO_PREFIX
        counts[root] = counts.get(root, 0) + 1
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ordered, sampled, complete
