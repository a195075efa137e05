"""Operations over many keys: ``clear``, ``delete_pattern``, prefix and tag invalidation.

Each invalidation that finishes, and the entries it deleted, is counted for the alias's
metrics by kind (``prefix``, ``tags``, ``pattern``) when it has them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .. import indexes
from ..execution import Call, Pipe, Script, Steps, Unavailable
from ..scripts import TAKE_INDEX
from .common import Scan, delete_glob, delete_keys, text

if TYPE_CHECKING:
    from ..protocol import Backend


def clear(cache: Backend) -> Steps[bool]:
    """Delete this alias's keys: only those under its ``KEY_PREFIX`` when it has one
    (safe on a shared server), else the whole database."""
    glob = cache.clear_glob()
    try:
        if glob is None:
            if cache.cluster:
                yield Call("flushdb", target_nodes="primaries")
            else:
                yield ("FLUSHDB",)
        else:
            yield from delete_glob(cache, glob)
    except Unavailable:
        return False
    finally:
        cache.forget_all_local()
    return True


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


def invalidate_prefix(cache: Backend, prefix: str) -> Steps[int]:
    """Make every entry under ``prefix`` (``campaigns`` covers ``campaigns:...``) a miss
    for every process; returns how many entries were deleted.

    Costs in proportion to those entries (no SCAN). Raises ``CacheUnavailable`` when
    Redis cannot finish it: an invalidation never silently does less than it says.
    """
    deleted = yield from _invalidate(cache, [cache.prefix_index(prefix)])
    _invalidated(cache, "prefix", deleted)
    return deleted


def invalidate_tags(cache: Backend, *tags: str) -> Steps[int]:
    """Make every entry written with any of ``tags`` a miss; returns how many went."""
    deleted = yield from _invalidate(cache, cache.tag_indexes(tags))
    _invalidated(cache, "tags", deleted)
    return deleted


def _invalidated(cache: Backend, kind: str, deleted: int) -> None:
    metrics = cache.runtime.metrics
    if metrics is not None:
        metrics.invalidated(kind, deleted)


def _invalidate(cache: Backend, names: Iterable[str]) -> Steps[int]:
    fallback = cache.runtime.fallback
    if fallback is not None:
        fallback.clear()
    sep = cache.key_separator
    members: list[bytes] = []
    for name in names:
        keys = [name, indexes.persistent_twin(name, sep)]
        members += yield Script(TAKE_INDEX, keys, [indexes.now_ms()])
    if not members:
        return 0
    deleted = yield from delete_keys(cache, indexes.unique(members))
    cache.forget_local(text(m) for m in members)
    cache.runtime.counters.deletes += deleted
    return deleted


def index_size(cache: Backend, index: str) -> Steps[int]:
    """Live members of one prefix or tag index (an upper bound of what invalidating it
    would delete); raises ``CacheUnavailable`` if Redis cannot tell."""
    twin = indexes.persistent_twin(index, cache.key_separator)
    live, kept = yield Pipe([("ZCOUNT", index, indexes.now_ms(), "+inf"), ("ZCARD", twin)])
    return int(live) + int(kept)
