"""Operations over many keys: ``clear``, ``delete_pattern``, prefix and tag invalidation.

Each invalidation that finishes, and the entries it deleted, is counted for the alias's
metrics by kind (``prefix``, ``tags``, ``pattern``) when it has them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...keys import glob_escape
from .. import indexes
from ..execution import Call, Pipe, Steps, Unavailable
from . import indexing
from .browse import Primaries, ScanNode
from .common import SCAN_COUNT, Scan, delete_glob, delete_keys, text

if TYPE_CHECKING:
    from ..protocol import Backend

logger = logging.getLogger("django_creator_cache")


def clear(cache: Backend) -> Steps[bool]:
    """Delete this alias's keys: only those under its ``KEY_PREFIX`` when it has one (safe
    on a shared server, and an alias whose prefix extends this one's keeps its keys),
    else the whole database."""
    glob = cache.clear_glob()
    owned = indexes.owned_pattern(cache)
    try:
        if glob is None:
            if cache.cluster:
                yield Call("flushdb", target_nodes="primaries")
            else:
                yield ("FLUSHDB",)
        else:
            yield from _clear_indexes(cache)
            yield from _scan_delete(cache, glob, owned, indexes_too=False)
    except Unavailable:
        return False
    finally:
        indexes.forget_records(cache)
        cache.forget_all_local()
    return True


def _clear_indexes(cache: Backend) -> Steps[None]:
    """Delete this alias's invalidation indexes before its entries: every slot record
    (a Cluster's), then every shard, each kind in a SCAN of its own. An entry written
    while ``clear`` runs then either existed when the entries' pass began (and goes with
    it) or sits in a shard made after its old one was deleted, and such a shard records
    itself again after the records were deleted: it stays invalidatable. (Shards deleted
    as the entries' SCAN met them could drop an entry written behind that SCAN.)"""
    n = indexes.names(cache)
    records = (indexes.ROOT_RECORD, indexes.TAG_RECORD) if n.sharded() else ()
    for kinds in (records, (indexes.ROOT_SHARD, indexes.TAG_SHARD)):
        if kinds:  # both kinds in one SCAN: their names differ in the last letter only
            last = "".join(kind[-1] for kind in kinds)
            glob = f"{glob_escape(n.head + kinds[0][:-1])}[{last}]{glob_escape(n.sep)}*"
            yield from _scan_delete(cache, glob, None)


def _scan_delete(
    cache: Backend, glob: str, keep: re.Pattern[str] | None, indexes_too: bool = True
) -> Steps[tuple[int, int]]:
    """Delete the keys matching ``glob`` (and ``keep``, when given; without
    ``indexes_too``, not the invalidation indexes) on every primary, a SCAN page at a
    time; ``(deleted, keys scanned)``."""
    deleted = scanned = 0
    nodes: list[str] = yield Primaries()
    for node in nodes:
        cursor = 0
        while True:
            cursor, found = yield ScanNode(node, cursor, glob, SCAN_COUNT)
            scanned += len(found)
            keys = [text(k) for k in found]
            if keep is not None:
                keys = [k for k in keys if keep.match(k)]
            if not indexes_too:
                keys = [k for k in keys if not indexes.is_bookkeeping(cache, k)]
            if keys:
                deleted += yield from delete_keys(cache, keys)
                cache.forget_local(keys)
            if cursor == 0:
                break
    cache.runtime.counters.deletes += deleted
    return deleted, scanned


def delete_pattern(
    cache: Backend,
    pattern: str,
    version: int | None = None,
    prefix: str | None = None,
    itersize: int | None = None,
) -> Steps[int]:
    """Delete every key matching the glob ``pattern`` (SCAN, every primary)."""
    try:
        glob = cache.make_pattern(pattern, version, prefix)
        deleted = yield from delete_glob(cache, glob, itersize)
    except Unavailable:
        return 0
    _invalidated(cache, "pattern", deleted)
    return deleted


def scan_keys(
    cache: Backend, search: str, itersize: int | None = None, version: int | None = None
) -> Steps[list[str]]:
    """User keys matching ``search`` (SCAN, every primary); none if Redis cannot answer."""
    try:
        found = yield Scan(cache.make_pattern(search, version), itersize)
    except Unavailable:
        return []
    return [cache.reverse_key(text(k)) for k in found]


def invalidate_prefix(cache: Backend, *prefixes: str) -> Steps[int]:
    """Make every entry under each of ``prefixes`` (``campaigns`` covers ``campaigns:...``,
    any depth, any version) a miss for every process, whoever wrote it; returns how many
    entries were deleted.

    Costs in proportion to those entries (the indexes, no SCAN); with
    ``OPTIONS["TRACK_WRITES"] = False`` it scans the keyspace instead, and logs the cost.
    Raises ``CacheUnavailable`` when Redis cannot finish it (a retry completes it): an
    invalidation never silently does less than it says. An empty prefix or part is a
    ``ValueError``.
    """
    if not prefixes:
        raise TypeError("invalidate_prefix() needs at least one prefix")
    sep = cache.key_separator
    checked = [indexes.checked_prefix(prefix, sep) for prefix in prefixes]
    if not cache.options.track_writes:
        deleted = yield from _scan_prefixes(cache, checked)
    else:
        targets = [(indexes.ROOT_SHARD, indexes.ROOT_RECORD, root, rest) for root, rest in checked]
        deleted = yield from _invalidate(cache, targets)
    _invalidated(cache, "prefix", deleted)
    return deleted


def invalidate_tags(cache: Backend, *tags: Any) -> Steps[int]:
    """Make every entry written with any of ``tags`` a miss; returns how many went.
    ``invalidate_tags("a", "b")`` and ``invalidate_tags(["a", "b"])`` are the same."""
    names = indexes.flatten(tags)
    targets = [(indexes.TAG_SHARD, indexes.TAG_RECORD, tag, "") for tag in names]
    deleted = (yield from _invalidate(cache, targets)) if targets else 0
    _invalidated(cache, "tags", deleted)
    return deleted


def _invalidated(cache: Backend, kind: str, deleted: int) -> None:
    metrics = cache.runtime.metrics
    if metrics is not None:
        metrics.invalidated(kind, deleted)


def _invalidate(cache: Backend, targets: Sequence[tuple[str, str, str, str]]) -> Steps[int]:
    fallback = cache.runtime.fallback
    if fallback is not None:
        fallback.clear()
    shards = yield from indexing.shards(cache, targets)
    local = cache.local_tier is not None
    deleted, gone = yield from indexing.drain(cache, shards, local)
    if gone:
        cache.forget_local(text(k) for k in gone)
    cache.runtime.counters.deletes += deleted
    return deleted


def _scan_prefixes(cache: Backend, checked: Sequence[tuple[str, str]]) -> Steps[int]:
    """``invalidate_prefix`` without indexes (``TRACK_WRITES`` off): SCAN every primary,
    a page at a time, for the keys under each prefix in every version. Its cost grows
    with the keyspace, so it is logged."""
    fallback = cache.runtime.fallback
    if fallback is not None:
        fallback.clear()
    sep = cache.key_separator
    started = time.perf_counter()
    deleted = scanned = 0
    custom = indexes.names(cache).custom
    for root, rest in checked:
        prefix = f"{root}{sep}{rest}" if rest else root
        under = f"{glob_escape(prefix)}{glob_escape(sep)}*"
        if custom:  # keys of an unknown shape: this version's, as make_pattern builds them
            glob, keep = cache.make_pattern(under), None
        else:
            base = indexes.names(cache).base
            glob = f"{glob_escape(base)}*{glob_escape(sep)}{under}"
            keep = re.compile(
                f"{re.escape(base)}-?[0-9]+{re.escape(sep)}{re.escape(prefix + sep)}", re.DOTALL
            )
        done, seen = yield from _scan_delete(cache, glob, keep)
        deleted += done
        scanned += seen
    logger.warning(
        "cache %r: invalidate_prefix scanned the keyspace (TRACK_WRITES is off): "
        "%d keys looked at, %d deleted, %.1f ms",
        cache.alias,
        scanned,
        deleted,
        (time.perf_counter() - started) * 1000,
    )
    return deleted


def index_size(cache: Backend, name: str, kind: str = indexes.TAG) -> Steps[int]:
    """Members of one tag's (``kind`` "t") or prefix's ("p") index: an upper bound of what
    invalidating it would delete. Raises ``CacheUnavailable`` if Redis cannot tell."""
    if kind == indexes.PREFIX:
        root, rest = indexes.checked_prefix(name, cache.key_separator)
        target = (indexes.ROOT_SHARD, indexes.ROOT_RECORD, root, rest)
    else:
        target = (indexes.TAG_SHARD, indexes.TAG_RECORD, indexes.tag_names(name)[0], "")
    shards = yield from indexing.shards(cache, [target])
    if not shards:
        return 0
    counts = yield Pipe([("ZLEXCOUNT", shard, low, high) for shard, low, high, _ in shards])
    return sum(int(c) for c in counts)
