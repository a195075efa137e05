"""Rate-limit counters per (platform, user), over the shared rate-limit core.

Each hit is one Lua call (``ratelimit.core``): it counts and sets the window's
TTL in the same atomic step, so a window always expires and later hits never
push it back. The default algorithm is a fixed window (one small hash per
counter); ``"sliding_window"`` is exact at window edges, at more memory.

Failure choice: ``RATELIMIT_FAIL_OPEN`` (default True: the hit is allowed),
shared with the view decorator; the returned ``Usage`` then says
``unavailable``.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.utils import timezone

from ..ratelimit.core import Limiter, Usage
from ..ratelimit.rates import Rate
from ..ttl import TTLLike
from .base import DomainManager


class RateLimitManager(DomainManager):
    """Counters keyed by platform (the limit's group) and user id; window default:
    TTL policy ``rate_limit`` (``CACHE_TTL_RATE_LIMIT``)."""

    policy = "rate_limit"

    def __init__(self, alias: str = "default", algorithm: str = "fixed_window") -> None:
        super().__init__(alias)
        self.algorithm = algorithm

    def limiter(
        self, platform: str, *, limit: int, window: TTLLike | object = DEFAULT_TIMEOUT
    ) -> Limiter:
        """The limiter of ``limit`` hits per ``window`` on ``platform``."""
        period = round(self.ttl_ms(window) / 1000)
        if period < 1:
            raise ValueError(f"a rate-limit window must be at least 1 s, got {window!r}")
        return Limiter(platform, Rate(limit, period), algorithm=self.algorithm, cache=self.alias)

    def hit(
        self,
        platform: str,
        user_id: Any,
        *,
        limit: int,
        window: TTLLike | object = DEFAULT_TIMEOUT,
        cost: int = 1,
    ) -> Usage:
        """Count a hit if the limit allows it; ``Usage`` says whether it did and what is left."""
        return self.limiter(platform, limit=limit, window=window).hit(str(user_id), cost)

    def usage(
        self, platform: str, user_id: Any, *, limit: int, window: TTLLike | object = DEFAULT_TIMEOUT
    ) -> Usage:
        """Where the counter stands (count = ``usage.used``), without counting a hit."""
        return self.limiter(platform, limit=limit, window=window).peek(str(user_id))

    def count(
        self, platform: str, user_id: Any, *, limit: int, window: TTLLike | object = DEFAULT_TIMEOUT
    ) -> int:
        return self.usage(platform, user_id, limit=limit, window=window).used

    def remaining(
        self, platform: str, user_id: Any, *, limit: int, window: TTLLike | object = DEFAULT_TIMEOUT
    ) -> int:
        return self.usage(platform, user_id, limit=limit, window=window).remaining

    def reset_at(
        self, platform: str, user_id: Any, *, limit: int, window: TTLLike | object = DEFAULT_TIMEOUT
    ) -> datetime.datetime:
        """When the whole limit is available again (now, if nothing is counted)."""
        usage = self.usage(platform, user_id, limit=limit, window=window)
        return timezone.now() + datetime.timedelta(seconds=usage.reset_seconds)

    def reset(
        self, platform: str, user_id: Any, *, limit: int, window: TTLLike | object = DEFAULT_TIMEOUT
    ) -> bool:
        """Forget the user's hits on ``platform``; True if there were any."""
        return self.limiter(platform, limit=limit, window=window).reset(str(user_id))
