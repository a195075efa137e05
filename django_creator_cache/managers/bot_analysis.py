"""Bot analysis per (promoter, campaign): score, action, reason, analysed-at.

Failure choice: fail open. A missing analysis makes the caller analyse again;
``set`` returns False when it could not store.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.utils import timezone

from ..ttl import TTLLike
from .base import DomainManager
from .fields import moment, number, parse_moment, text
from .storage import replace_hash

_FIELDS = ("score", "action", "reason", "analysed_at")


@dataclass(frozen=True)
class BotAnalysis:
    """The verdict on one promoter's traffic for one campaign."""

    score: float
    action: str
    reason: str = ""
    analysed_at: datetime.datetime | None = None


class BotAnalysisManager(DomainManager):
    """``bot:<promoter>:<campaign>`` hashes, TTL policy ``bot_analysis``."""

    policy = "bot_analysis"
    reads_fail_open = True
    writes_fail_open = True

    def _hash(self, promoter_id: Any, campaign_id: Any) -> str:
        return self._key("bot", promoter_id, campaign_id)

    def set(
        self,
        promoter_id: Any,
        campaign_id: Any,
        analysis: BotAnalysis,
        *,
        ttl: TTLLike | object = DEFAULT_TIMEOUT,
    ) -> bool:
        """Store an analysis (``analysed_at`` defaults to now)."""
        fields: dict[str, str | int] = {
            "score": number(analysis.score),
            "action": analysis.action,
            "reason": analysis.reason,
            "analysed_at": moment(analysis.analysed_at or timezone.now()),
        }
        key = self._hash(promoter_id, campaign_id)
        ttl_ms = self.ttl_ms(ttl)
        return self._write("set", lambda c: replace_hash(c, key, ttl_ms, fields), False)

    def get(self, promoter_id: Any, campaign_id: Any) -> BotAnalysis | None:
        key = self._hash(promoter_id, campaign_id)

        def read(client: Any) -> BotAnalysis | None:
            score, action, reason, at = client.hmget(key, list(_FIELDS))
            if score is None:
                return None
            return BotAnalysis(float(score), text(action), text(reason), parse_moment(at))

        return self._read("get", read, None)

    def delete(self, promoter_id: Any, campaign_id: Any) -> bool:
        key = self._hash(promoter_id, campaign_id)
        return self._write("delete", lambda c: bool(c.delete(key)), False)
