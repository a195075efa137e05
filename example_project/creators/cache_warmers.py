"""Warmers for ``python manage.py cache_warm``: the dashboard and the popular campaigns."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django_creator_cache.warming import warmer

from . import services


@warmer("dashboard", ttl=services.DASHBOARD_TTL)
def dashboard() -> Iterator[tuple[str, Callable[[], Any]]]:
    """The dashboard's aggregates (totals per platform, top campaigns and promoters)."""
    yield services.DASHBOARD_KEY, services.dashboard_stats


@warmer("popular-campaigns", ttl=services.SUMMARY_TTL)
def popular_campaigns() -> Iterator[tuple[str, Callable[[], Any]]]:
    """The summaries of the most viewed campaigns."""
    for pk in services.popular_campaign_ids():
        yield services.summary_key(pk), lambda pk=pk: services.campaign_summary(pk)
