"""A bounded in-process read tier in front of Redis, kept coherent by Redis itself.

Opt-in per alias (``OPTIONS["LOCAL_TIER"]``). ``get``/``get_many`` (and their
async twins) first look here; a hit costs a dict lookup and a decode, no round
trip. Coherence comes from server-assisted client-side caching (Redis
``CLIENT TRACKING``), in broadcast mode:

* per process, alias and primary node, one dedicated connection ``P`` (RESP2)
  runs ``CLIENT TRACKING on REDIRECT <its own id> BCAST PREFIX <the alias's
  key prefixes>`` and then ``SUBSCRIBE __redis__:invalidate``: from then on the
  node sends ``P`` the name of every key under those prefixes that anyone
  changes, deletes, expires or evicts (and a flush-everything message on
  ``FLUSHDB``), whoever wrote it. A background thread reads ``P`` and drops
  those keys here. Broadcast mode keeps no per-key state on the server and
  lets fills use the ordinary connection pools (sync and async, every mode);
  its cost is one small message per write under the prefixes to every process
  (``KEY_PREFIXES`` narrows what is tracked);
* the same thread sends a ``PING`` on ``P`` every ``MAX_STALENESS / 4`` seconds,
  after checking with ``ROLE`` (and, on a Cluster, ``CLUSTER SLOTS``) on a second
  connection ``C`` to the same node that it is still the primary of the slots
  it tracks. Replies on ``P`` come in the order the server queued them, so when
  the ``PONG`` to a ``PING`` sent at time ``s`` arrives, every invalidation of a
  write that completed before ``s`` has been received and applied;
* the tier serves a hit only while the last such confirmation is younger than
  ``MAX_STALENESS``; otherwise (thread starved, node slow or gone) reads go to
  Redis. A lost connection, an error, a failover or a slot-map change flushes
  the tier and bypasses it until tracking is re-established and confirmed;
* before serving a hit, the reader drains whatever invalidations have already
  reached ``P``'s socket (a non-blocking ``poll``), so a write by another process
  on the same host is normally visible to the next read after it returns.

The guarantee: once a writer's call (any process, any client) has returned, no
process serves the previous value from its local tier more than
``MAX_STALENESS`` seconds later; in practice the delay is the delivery time of
one invalidation message (well under a millisecond on one host). Writes made
through this backend drop the local copy in the writing process when they
return (read-your-writes in that process). A value fetched from Redis is only
kept if no invalidation of its key (or flush) arrived between the start of the
fetch and its reply: the fetch first leaves a placeholder that an invalidation
removes, and the reply is stored only if its placeholder is still there. Local
entries also expire with the key's own TTL (read with the value) and ``TTL``.
Caveats: Redis split-brain during a failover, and keys moving to a newly added
Cluster primary before the next slot-map check (at most ``MAX_STALENESS / 4``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ..options import BackendOptions, LocalTierOptions
from .resp import MISSING
from .store import LocalTier

# -- one tier per alias and process -----------------------------------------------------------

_tiers: dict[tuple[Any, ...], LocalTier] = {}
_tiers_lock = threading.Lock()


def tier_for(
    name: str, options: BackendOptions, settings: LocalTierOptions, prefixes: tuple[str, ...]
) -> LocalTier:
    """The process-wide tier of one alias and configuration (Django makes a backend per
    thread; they share it)."""
    key = (name, prefixes, settings)
    tier = _tiers.get(key)
    if tier is None:
        with _tiers_lock:
            tier = _tiers.get(key)
            if tier is None:
                tier = _tiers[key] = LocalTier(name, options, settings, prefixes)
    return tier


def shutdown_all() -> None:
    """Stop every tier's thread and forget them (tests, settings changes)."""
    with _tiers_lock:
        tiers = list(_tiers.values())
        _tiers.clear()
    for tier in tiers:
        tier.close()


def _reset_after_fork() -> None:
    global _tiers_lock
    _tiers_lock = threading.Lock()
    for tier in _tiers.values():
        tier._forked()  # the next reserve() restarts it in this process


def _pause_before_fork() -> None:
    for tier in list(_tiers.values()):
        tier._pause_for_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_pause_before_fork, after_in_child=_reset_after_fork)

__all__ = ["MISSING", "LocalTier", "shutdown_all", "tier_for"]
