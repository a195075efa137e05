"""Membership indexes that make prefix and tag invalidation cost what it deletes.

Each prefix of a key (``campaigns``, ``campaigns:user-1`` for the key
``campaigns:user-1:list``) and each tag has an index: a sorted set of the full
Redis keys written under it, scored by their expiry time. A write adds the key
to its indexes in the same pipeline as the ``SET`` (one round trip); a read is
a plain ``GET``. Invalidation atomically takes and deletes an index, then
deletes its members: cost in proportion to the entries invalidated, never to
the size of the keyspace, and no ``SCAN``.

Bookkeeping expires with what it tracks: an index's TTL is pushed to its
latest member's expiry (``PEXPIREAT ... NX`` then ``GT``) and expired members
are pruned now and then. Keys written without expiry go to a separate
persistent index (sharing the hash tag, so one script reads both on a Cluster),
which lives until it is invalidated.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from typing import Any

# Top-level prefixes declared in code (``track_prefixes``), for every alias.
declared_roots: set[str] = set()

PREFIX = "p"
TAG = "t"
# One write in this many also prunes expired members from the indexes it touches.
PRUNE_EVERY = 64


def track_prefixes(*roots: str) -> None:
    """Index writes under these top-level prefixes so they can be invalidated.

    Call it at start-up (``AppConfig.ready``) in every process that writes.
    """
    declared_roots.update(str(root) for root in roots)


def ancestors(key: str, separator: str, depth: int) -> list[str]:
    """The prefixes of ``key`` at each separator, shortest first, at most ``depth``.

    ``ancestors("campaigns:user-1:list", ":", 4)`` is
    ``["campaigns", "campaigns:user-1"]``; a key without separator has none.
    """
    parts = key.split(separator)[:-1][:depth]
    return [separator.join(parts[: i + 1]) for i in range(len(parts))]


def index_key(head: str, separator: str, kind: str, name: str) -> str:
    """Redis key of the index of a prefix (``kind`` "p") or a tag ("t").

    The name sits in a hash tag so the index and its persistent twin share a
    Cluster slot.
    """
    return f"{head}dcc{separator}{kind}{separator}{{{name}}}"


def persistent_twin(index: str, separator: str) -> str:
    return f"{index}{separator}forever"


def now_ms() -> int:
    return int(time.time() * 1000)


def joins(
    indexes: Sequence[str], full_key: str, px: int | None, separator: str
) -> list[tuple[Any, ...]]:
    """The commands that add ``full_key`` to ``indexes``.

    Sent before the ``SET`` in the same pipeline, so an invalidation that runs
    between the two still finds the key.
    """
    if px is None:
        return [("ZADD", persistent_twin(index, separator), 0, full_key) for index in indexes]
    expires = now_ms() + px
    prune = random.randrange(PRUNE_EVERY) == 0
    commands: list[tuple[Any, ...]] = []
    for index in indexes:
        commands += (
            ("ZADD", index, expires, full_key),
            ("PEXPIREAT", index, expires, "NX"),
            ("PEXPIREAT", index, expires, "GT"),
        )
        if prune:
            commands.append(("ZREMRANGEBYSCORE", index, "-inf", f"({now_ms()}"))
    return commands


def unique(keys: Iterable[bytes]) -> list[bytes]:
    return list(dict.fromkeys(keys))
