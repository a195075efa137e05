"""View counts per (promoter, campaign): views, likes, comments, shares, timestamp.

One Redis hash per pair. ``add`` increments with HINCRBY inside one Lua call
that also stamps the time and refreshes the TTL, so increments from any number
of processes add up exactly and a reader never sees half an update.

Failure choice: fail open everywhere. These are fast-moving analytics; the
view snapshots in the database are the record. ``add`` returns None when the
increment could not be counted, reads return None.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.utils import timezone

from ..backend.scripts import LuaScript
from ..ttl import TTLLike
from .base import DomainManager
from .fields import moment, parse_moment
from .storage import replace_hash

COUNTS = ("views", "likes", "comments", "shares")

_ADD = LuaScript(
    """
-- KEYS[1]: the hash. ARGV[1]: TTL ms (0: none), ARGV[2]: timestamp, ARGV[3..]: field, delta.
for i = 3, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'timestamp', ARGV[2])
if ARGV[1] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return redis.call('HMGET', KEYS[1], 'views', 'likes', 'comments', 'shares', 'timestamp')
"""
)


@dataclass(frozen=True)
class ViewStats:
    """Engagement of one promoter's post of one campaign, as last counted."""

    views: int = 0
    likes: int = 0
    comments: int = 0
    shares: int = 0
    timestamp: datetime.datetime | None = None


def _stats(values: list[bytes | None]) -> ViewStats:
    views, likes, comments, shares, stamp = values
    return ViewStats(
        int(views or 0),
        int(likes or 0),
        int(comments or 0),
        int(shares or 0),
        parse_moment(stamp) if stamp else None,
    )


class ViewTrackingManager(DomainManager):
    """``views:<promoter>:<campaign>`` hashes, TTL policy ``view_tracking``."""

    policy = "view_tracking"
    reads_fail_open = True
    writes_fail_open = True

    def _hash(self, promoter_id: Any, campaign_id: Any) -> str:
        return self._key("views", promoter_id, campaign_id)

    def add(
        self,
        promoter_id: Any,
        campaign_id: Any,
        *,
        views: int = 0,
        likes: int = 0,
        comments: int = 0,
        shares: int = 0,
        at: datetime.datetime | None = None,
        ttl: TTLLike | object = DEFAULT_TIMEOUT,
    ) -> ViewStats | None:
        """Add to the counts atomically; returns the new totals (None if not counted)."""
        deltas = dict(zip(COUNTS, (views, likes, comments, shares), strict=True))
        pairs = [item for name, delta in deltas.items() if delta for item in (name, int(delta))]
        args = [self.ttl_ms(ttl), moment(at or timezone.now()), *pairs]
        key = self._hash(promoter_id, campaign_id)
        return self._write("add", lambda c: _stats(_ADD(c, [key], args)), None)

    def set(
        self,
        promoter_id: Any,
        campaign_id: Any,
        stats: ViewStats,
        *,
        ttl: TTLLike | object = DEFAULT_TIMEOUT,
    ) -> bool:
        """Replace the counts with a snapshot (e.g. read from the platform's API)."""
        fields: dict[str, str | int] = {name: int(getattr(stats, name)) for name in COUNTS}
        fields["timestamp"] = moment(stats.timestamp or timezone.now())
        key = self._hash(promoter_id, campaign_id)
        ttl_ms = self.ttl_ms(ttl)
        return self._write("set", lambda c: replace_hash(c, key, ttl_ms, fields), False)

    def get(self, promoter_id: Any, campaign_id: Any) -> ViewStats | None:
        key = self._hash(promoter_id, campaign_id)

        def read(client: Any) -> ViewStats | None:
            values = client.hmget(key, [*COUNTS, "timestamp"])
            return None if all(v is None for v in values) else _stats(values)

        return self._read("get", read, None)

    def delete(self, promoter_id: Any, campaign_id: Any) -> bool:
        key = self._hash(promoter_id, campaign_id)
        return self._write("delete", lambda c: bool(c.delete(key)), False)
