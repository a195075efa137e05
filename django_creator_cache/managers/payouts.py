"""Daily payout summaries per date: total amount, processed and pending counts.

Money is stored as exact decimal text in a Redis hash and read back as the
same ``Decimal`` whatever the alias's serializer (JSON and msgpack would lose
it); ``processed_at`` keeps its time zone. ``mark_processed`` moves payouts
from pending to processed in one Lua call, so concurrent workers never lose one.

Failure choice: reads fail open (None: read the database); writes fail closed
(``CacheUnavailable``): a summary of money that was not recorded must say so.
"""

from __future__ import annotations

import datetime
import decimal
from dataclasses import dataclass
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.utils import timezone

from ..backend.scripts import LuaScript
from ..ttl import TTLLike
from .base import DomainManager
from .fields import moment, money, parse_moment, parse_money
from .storage import replace_hash

_FIELDS = ("total_amount", "processed_count", "pending_count", "processed_at")

_MARK_PROCESSED = LuaScript(
    """
-- KEYS[1]: the day's hash. ARGV[1]: how many, ARGV[2]: when. Nil if there is no summary.
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HINCRBY', KEYS[1], 'processed_count', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'pending_count', 0 - tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'processed_at', ARGV[2])
return redis.call('HMGET', KEYS[1], 'total_amount', 'processed_count', 'pending_count',
  'processed_at')
"""
)


@dataclass(frozen=True)
class DailyPayout:
    """The payouts of one day."""

    date: datetime.date
    total_amount: decimal.Decimal
    processed_count: int = 0
    pending_count: int = 0
    processed_at: datetime.datetime | None = None


def _payout(day: datetime.date, values: list[Any]) -> DailyPayout:
    total, processed, pending, at = values
    return DailyPayout(
        day,
        parse_money(total),
        int(processed),
        int(pending),
        parse_moment(at) if at else None,
    )


class PayoutManager(DomainManager):
    """``payout:<YYYY-MM-DD>`` hashes, TTL policy ``daily_payout``."""

    policy = "daily_payout"
    reads_fail_open = True
    writes_fail_open = False

    def _hash(self, day: datetime.date) -> str:
        return self._key("payout", day.isoformat())

    def set(self, payout: DailyPayout, *, ttl: TTLLike | object = DEFAULT_TIMEOUT) -> bool:
        """Store (replace) the summary of ``payout.date``."""
        fields: dict[str, str | int] = {
            "total_amount": money(payout.total_amount),
            "processed_count": int(payout.processed_count),
            "pending_count": int(payout.pending_count),
        }
        if payout.processed_at is not None:
            fields["processed_at"] = moment(payout.processed_at)
        key = self._hash(payout.date)
        ttl_ms = self.ttl_ms(ttl)
        return self._write("set", lambda c: replace_hash(c, key, ttl_ms, fields), False)

    def get(self, day: datetime.date) -> DailyPayout | None:
        key = self._hash(day)

        def read(client: Any) -> DailyPayout | None:
            values = client.hmget(key, list(_FIELDS))
            return None if values[0] is None else _payout(day, values)

        return self._read("get", read, None)

    def mark_processed(
        self, day: datetime.date, count: int = 1, *, at: datetime.datetime | None = None
    ) -> DailyPayout | None:
        """Move ``count`` payouts from pending to processed; None if the day has no summary.

        ``count`` 0 only records ``at``; a negative or non-integer count is a ``ValueError``
        (a counter of money must never move backwards by mistake).
        """
        if isinstance(count, bool) or not isinstance(count, int):
            raise ValueError(f"mark_processed: count must be an int, got {count!r}")
        if count < 0:
            raise ValueError(f"mark_processed: count must be 0 or more, got {count}")
        key = self._hash(day)
        args = [count, moment(at or timezone.now())]

        def mark(client: Any) -> DailyPayout | None:
            values = _MARK_PROCESSED(client, [key], args)
            return None if values is None else _payout(day, values)

        return self._write("mark_processed", mark, None)

    def delete(self, day: datetime.date) -> bool:
        key = self._hash(day)
        return self._write("delete", lambda c: bool(c.delete(key)), False)
