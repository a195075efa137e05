"""The campaign list, read through the cache and invalidated on change."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache

from .models import Campaign

CAMPAIGNS_KEY = "campaigns:list"
CAMPAIGNS_TTL = 300


def campaign_list() -> tuple[list[dict[str, Any]], bool]:
    """The campaigns as plain rows, and whether they came from the cache."""
    computed = False

    def load() -> list[dict[str, Any]]:
        nonlocal computed
        computed = True
        return [
            {
                "creator_name": c.creator_name,
                "platform": c.get_platform_display(),
                "budget": c.budget,
                "status": c.get_status_display(),
            }
            for c in Campaign.objects.all()
        ]

    # If Redis is down the backend misses and skips the write: rows come from the database.
    rows: list[dict[str, Any]] = cache.get_or_set(CAMPAIGNS_KEY, load, CAMPAIGNS_TTL)
    return rows, not computed


def invalidate_campaigns() -> None:
    cache.delete(CAMPAIGNS_KEY)
