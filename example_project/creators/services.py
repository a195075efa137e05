"""What the pages show, computed from the database and read through the cache.

The dashboard's numbers are a few real aggregate queries over thousands of rows:
the reason to cache them. Keys live under the ``dashboard`` and ``campaigns``
prefixes, which ``invalidate_on`` (``apps.py``) drops when a model changes.
"""

from __future__ import annotations

import datetime
from contextlib import suppress
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Q, Sum

from django_creator_cache.exceptions import CacheUnavailable
from django_creator_cache.managers import BotAnalysis, DailyPayout, ViewStats, managers

from .models import Campaign, Payout, Promoter, ViewSnapshot

DASHBOARD_KEY = "dashboard:stats"
DASHBOARD_TTL = 300
SUMMARY_TTL = 600
TOP = 10
POPULAR = 20
PAYOUT_DAYS = 7


def dashboard_stats(*, use_cache: bool = True) -> dict[str, Any]:
    """Totals per platform, top campaigns and promoters by views, recent payouts.

    ``use_cache=False``: payouts straight from the database, not the payouts manager.
    """
    per_platform = {
        row["platform"]: row
        for row in Campaign.objects.values("platform").annotate(
            campaigns=Count("id"),
            active=Count("id", filter=Q(status=Campaign.Status.ACTIVE)),
            budget=Sum("budget"),
        )
    }
    views_per_platform = dict(
        ViewSnapshot.objects.values_list("campaign__platform").annotate(Sum("views"))
    )
    platforms = [
        {
            "platform": label,
            "campaigns": per_platform.get(value, {}).get("campaigns", 0),
            "active": per_platform.get(value, {}).get("active", 0),
            "budget": per_platform.get(value, {}).get("budget") or Decimal("0"),
            "views": views_per_platform.get(value) or 0,
        }
        for value, label in Campaign.Platform.choices
    ]
    top_campaigns = list(
        Campaign.objects.annotate(
            views=Sum("snapshots__views"),
            engagement=Sum("snapshots__likes")
            + Sum("snapshots__comments")
            + Sum("snapshots__shares"),
            promoters=Count("snapshots__promoter", distinct=True),
        )
        .filter(views__isnull=False)
        .order_by("-views", "id")
        .values("id", "creator_name", "platform", "budget", "views", "engagement", "promoters")[
            :TOP
        ]
    )
    top_promoters = list(
        Promoter.objects.annotate(
            views=Sum("snapshots__views"), campaigns=Count("snapshots__campaign", distinct=True)
        )
        .filter(views__isnull=False)
        .order_by("-views", "id")
        .values("id", "handle", "platform", "followers", "views", "campaigns")[:TOP]
    )
    return {
        "platforms": platforms,
        "top_campaigns": top_campaigns,
        "top_promoters": top_promoters,
        "payouts": recent_payouts(use_cache=use_cache),
    }


def cached_dashboard_stats(*, use_cache: bool = True) -> dict[str, Any]:
    """``dashboard_stats()`` through the cache (single flight: one process computes)."""
    if not use_cache:
        return dashboard_stats(use_cache=False)
    stats: dict[str, Any] = cache.get_or_set(DASHBOARD_KEY, dashboard_stats, DASHBOARD_TTL)
    return stats


def campaign_summary(pk: int) -> dict[str, Any] | None:
    """One campaign with its engagement totals and its top promoters; None if unknown."""
    campaign = (
        Campaign.objects.filter(pk=pk)
        .values("id", "creator_name", "platform", "budget", "status", "created_at")
        .first()
    )
    if campaign is None:
        return None
    snapshots = ViewSnapshot.objects.filter(campaign_id=pk)
    totals = snapshots.aggregate(
        views=Sum("views"), likes=Sum("likes"), comments=Sum("comments"), shares=Sum("shares")
    )
    promoters = list(
        snapshots.values("promoter_id", "promoter__handle")
        .annotate(views=Sum("views"), likes=Sum("likes"))
        .order_by("-views", "promoter_id")[:TOP]
    )
    return {"campaign": campaign, "totals": totals, "promoters": promoters}


def summary_key(pk: int) -> str:
    return f"campaigns:summary:{pk}"


def cached_campaign_summary(pk: int, *, use_cache: bool = True) -> dict[str, Any] | None:
    """``campaign_summary(pk)`` through the cache (tag ``campaign:<pk>``)."""
    if not use_cache:
        return campaign_summary(pk)
    summary: dict[str, Any] | None = cache.get_or_set(
        summary_key(pk), lambda: campaign_summary(pk), SUMMARY_TTL, tags=[f"campaign:{pk}"]
    )
    return summary


def popular_campaign_ids(limit: int = POPULAR) -> list[int]:
    """The campaigns with the most views: the ones worth warming."""
    return list(
        ViewSnapshot.objects.values_list("campaign_id", flat=True)
        .annotate(total=Sum("views"))
        .order_by("-total", "campaign_id")[:limit]
    )


def daily_payout(day: datetime.date, *, use_cache: bool = True) -> DailyPayout | None:
    """The day's payout summary from the payouts manager, else from the database (and cached)."""
    payouts = managers("default").payouts
    found = payouts.get(day) if use_cache else None
    if found is not None:
        return found
    row = Payout.objects.filter(date=day).first()
    if row is None:
        return None
    summary = DailyPayout(day, row.amount, row.processed_count, row.pending_count)
    if not use_cache:
        return summary
    with suppress(CacheUnavailable):  # payout writes fail closed; the page shows the row anyway
        payouts.set(summary)
    return summary


def recent_payouts(days: int = PAYOUT_DAYS, *, use_cache: bool = True) -> list[DailyPayout]:
    """The latest ``days`` days that have payouts, newest first."""
    dates = Payout.objects.values_list("date", flat=True)[:days]
    found = (daily_payout(day, use_cache=use_cache) for day in dates)
    return [p for p in found if p is not None]


def forget_payout(day: datetime.date) -> None:
    """Drop the cached summary of ``day`` (its row changed)."""
    with suppress(CacheUnavailable):  # deletes fail closed; the entry expires with its TTL
        managers("default").payouts.delete(day)


def track_views(promoter_id: int, campaign_id: int, counts: dict[str, int]) -> ViewStats | None:
    """Count a view event in Redis (atomic); the new totals, None if Redis is down."""
    return managers("default").view_tracking.add(promoter_id, campaign_id, **counts)


def bot_score(promoter_id: int, campaign_id: int) -> tuple[BotAnalysis, bool]:
    """The bot analysis of a promoter's traffic on a campaign, and whether it was cached.

    A simple heuristic over the stored snapshots plus the live counts: traffic with
    almost no engagement per view, or many views from an account with few followers,
    looks bought.
    """
    bots = managers("default").bot_analysis
    found = bots.get(promoter_id, campaign_id)
    if found is not None:
        return found, True
    totals = ViewSnapshot.objects.filter(
        promoter_id=promoter_id, campaign_id=campaign_id
    ).aggregate(
        views=Sum("views"), likes=Sum("likes"), comments=Sum("comments"), shares=Sum("shares")
    )
    live = managers("default").view_tracking.get(promoter_id, campaign_id)
    views = (totals["views"] or 0) + (live.views if live else 0)
    engaged = sum(totals[k] or 0 for k in ("likes", "comments", "shares"))
    if live:
        engaged += live.likes + live.comments + live.shares
    followers = (
        Promoter.objects.filter(pk=promoter_id).values_list("followers", flat=True).first() or 0
    )
    score, reasons = 0.0, []
    if views >= 1000 and engaged / views < 0.01:
        score += 0.6
        reasons.append("under 1% engagement")
    if views > 50 * max(followers, 1):
        score += 0.4
        reasons.append("views over 50x followers")
    action = "block" if score >= 0.8 else "review" if score >= 0.4 else "allow"
    analysis = BotAnalysis(round(score, 2), action, "; ".join(reasons) or "looks organic")
    bots.set(promoter_id, campaign_id, analysis)
    return analysis, False
