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

# Takes every live member of an index and its persistent twin, and deletes both.
TAKE_SCRIPT = """
local live = redis.call('ZRANGE', KEYS[1], ARGV[1], '+inf', 'BYSCORE')
local kept = redis.call('ZRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[1], KEYS[2])
for _, key in ipairs(kept) do live[#live + 1] = key end
return live
"""


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


def register(
    pipe: Any, indexes: Sequence[str], full_key: str, px: int | None, separator: str
) -> None:
    """Queue on ``pipe`` the commands that add ``full_key`` to ``indexes``.

    Queued before the ``SET``, so an invalidation that runs between the two
    still finds the key.
    """
    if px is None:
        for index in indexes:
            pipe.execute_command("ZADD", persistent_twin(index, separator), 0, full_key)
        return
    expires = now_ms() + px
    prune = random.randrange(PRUNE_EVERY) == 0
    for index in indexes:
        pipe.execute_command("ZADD", index, expires, full_key)
        pipe.execute_command("PEXPIREAT", index, expires, "NX")
        pipe.execute_command("PEXPIREAT", index, expires, "GT")
        if prune:
            pipe.execute_command("ZREMRANGEBYSCORE", index, "-inf", f"({now_ms()}")


def take_members(script: Any, redis: Any, index: str, separator: str) -> list[bytes]:
    """Atomically empty one index (and its twin); return the keys it tracked."""
    members: list[bytes] = script(
        keys=[index, persistent_twin(index, separator)], args=[now_ms()], client=redis
    )
    return members


def unique(keys: Iterable[bytes]) -> list[bytes]:
    return list(dict.fromkeys(keys))
