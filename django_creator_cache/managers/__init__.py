"""Domain managers: small typed objects over the cache, one per domain.

Entry point: ``managers(alias)``, e.g.
``managers("default").view_tracking.add(promoter_id, campaign_id, views=1)``.
The backend is looked up on every call (``caches[alias]``), never kept.
Each manager documents its TTL policy and what it does when Redis fails.
"""

from __future__ import annotations

from functools import cached_property

from .auth_tokens import AuthTokenManager, TokenInfo
from .base import DomainManager
from .bot_analysis import BotAnalysis, BotAnalysisManager
from .feature_flags import FeatureFlagManager
from .payouts import DailyPayout, PayoutManager
from .rate_limits import RateLimitManager
from .sessions import SessionManager
from .user_cache import UserCacheManager
from .view_tracking import ViewStats, ViewTrackingManager


class Managers:
    """Every domain manager of one cache alias."""

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias

    def __repr__(self) -> str:
        return f"<Managers alias={self.alias!r}>"

    @cached_property
    def sessions(self) -> SessionManager:
        return SessionManager(self.alias)

    @cached_property
    def view_tracking(self) -> ViewTrackingManager:
        return ViewTrackingManager(self.alias)

    @cached_property
    def bot_analysis(self) -> BotAnalysisManager:
        return BotAnalysisManager(self.alias)

    @cached_property
    def rate_limits(self) -> RateLimitManager:
        return RateLimitManager(self.alias)

    @cached_property
    def payouts(self) -> PayoutManager:
        return PayoutManager(self.alias)

    @cached_property
    def feature_flags(self) -> FeatureFlagManager:
        return FeatureFlagManager(self.alias)

    @cached_property
    def user_cache(self) -> UserCacheManager:
        return UserCacheManager(self.alias)

    @cached_property
    def auth_tokens(self) -> AuthTokenManager:
        return AuthTokenManager(self.alias)


def managers(alias: str = "default") -> Managers:
    """The domain managers of the ``CACHES`` entry ``alias``."""
    return Managers(alias)


__all__ = [
    "AuthTokenManager",
    "BotAnalysis",
    "BotAnalysisManager",
    "DailyPayout",
    "DomainManager",
    "FeatureFlagManager",
    "Managers",
    "PayoutManager",
    "RateLimitManager",
    "SessionManager",
    "TokenInfo",
    "UserCacheManager",
    "ViewStats",
    "ViewTrackingManager",
    "managers",
]
