"""Pages and JSON endpoints of the creator promotion platform.

Cached pages (``cache_response``): the dashboard (prefix ``dashboard``), the
campaign list and campaign pages (prefix ``campaigns``, tag ``campaign:<pk>``);
``apps.py`` invalidates them when a campaign changes. The view-tracking API is
rate limited per IP and per API key (``rate_limited``) and counts in Redis
through the domain managers, as do the bot scores and the daily payouts.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Any

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import Sum
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.http import urlencode
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from django_creator_cache.decorators import cache_response, rate_limited
from example_project import cacheinfo

from . import services
from .models import Campaign, Promoter

PAGE_SIZE = 50
API_RATE = "60/m"
BYPASS_HEADER = "X-Cache-Bypass"
COUNT_FIELDS = ("views", "likes", "comments", "shares")
MAX_EVENT_COUNT = 10_000


def bypassed(request: HttpRequest) -> bool:
    """Whether this request asks to skip every cache (benchmarks only).

    Honoured only when ``settings.CREATORS_ALLOW_CACHE_BYPASS`` is on (env
    ``EXAMPLE_ALLOW_CACHE_BYPASS=1``): otherwise anyone could force uncached renders.
    """
    allowed = getattr(settings, "CREATORS_ALLOW_CACHE_BYPASS", False)
    return bool(allowed) and request.headers.get(BYPASS_HEADER) == "1"


def page_key(request: HttpRequest, *args: Any, **kwargs: Any) -> str | None:
    """What varies a cached page: scheme, host, path, sorted query; None when bypassed."""
    if bypassed(request):
        return None
    query = urlencode(sorted(request.GET.lists()), doseq=True)
    return f"{request.scheme}://{request.get_host()}{request.path}?{query}"


def api_key(request: HttpRequest) -> str | None:
    """Rate-limit identity of the ``X-Api-Key`` header (hashed); None without one."""
    value = request.headers.get("X-Api-Key")
    if not value:
        return None
    return "api-key:" + hashlib.blake2b(value.encode(), digest_size=12).hexdigest()


@require_safe
@cache_response(ttl="5m", prefix="dashboard", name="page", key_func=page_key, vary_on_user=True)
def dashboard(request: HttpRequest) -> HttpResponse:
    """Totals per platform, top campaigns and promoters, recent payouts."""
    stats = services.cached_dashboard_stats(use_cache=not bypassed(request))
    return render(request, "creators/dashboard.html", {**stats, "cache": cacheinfo.describe()})


@require_safe
@cache_response(ttl="5m", prefix="campaigns", name="list", key_func=page_key, vary_on_user=True)
def campaign_list(request: HttpRequest) -> HttpResponse:
    """Campaigns with their views, filtered by ``platform`` and ``status``, 50 a page."""
    campaigns = Campaign.objects.annotate(views=Sum("snapshots__views")).order_by(
        "-created_at", "-id"
    )
    platform = request.GET.get("platform", "")
    status = request.GET.get("status", "")
    if platform in Campaign.Platform.values:
        campaigns = campaigns.filter(platform=platform)
    if status in Campaign.Status.values:
        campaigns = campaigns.filter(status=status)
    page = Paginator(campaigns, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "creators/campaign_list.html",
        {
            "page": page,
            "platform": platform,
            "status": status,
            "platforms": Campaign.Platform.choices,
            "statuses": Campaign.Status.choices,
            "cache": cacheinfo.describe(),
        },
    )


@require_safe
@cache_response(
    ttl="10m",
    prefix="campaigns",
    name="detail",
    key_func=page_key,
    vary_on_user=True,
    tags=lambda request, pk: [f"campaign:{pk}"],
)
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One campaign: engagement totals and its top promoters (warmed by ``cache_warm``)."""
    summary = services.cached_campaign_summary(pk, use_cache=not bypassed(request))
    if summary is None:
        raise Http404("No such campaign")
    return render(
        request, "creators/campaign_detail.html", {**summary, "cache": cacheinfo.describe()}
    )


def _bad_request(message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=400)


@csrf_exempt  # an API for promoters' apps, authenticated by key, not a browser form
@require_POST
@rate_limited(rate=API_RATE, key="ip", group="api-views-ip")
@rate_limited(rate=API_RATE, key=api_key, group="api-views-key")
def track_views(request: HttpRequest) -> JsonResponse:
    """``POST /api/views/`` ``{"promoter": 1, "campaign": 2, "views": 1, "likes": 0, ...}``.

    Adds the counts to the live totals of that promoter's post of that campaign
    (view tracking manager, atomic) and returns the new totals.
    """
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return _bad_request("the body must be JSON")
    if not isinstance(body, dict):
        return _bad_request("the body must be a JSON object")
    try:
        promoter_id, campaign_id = int(body["promoter"]), int(body["campaign"])
        counts = {name: int(body.get(name, 0)) for name in COUNT_FIELDS}
    except (KeyError, TypeError, ValueError):
        return _bad_request("promoter and campaign (ids) are required; counts are integers")
    if any(not 0 <= n <= MAX_EVENT_COUNT for n in counts.values()):
        return _bad_request(f"counts must be between 0 and {MAX_EVENT_COUNT}")
    if not Promoter.objects.filter(pk=promoter_id).exists():
        return _bad_request(f"no promoter {promoter_id}")
    if not Campaign.objects.filter(pk=campaign_id).exists():
        return _bad_request(f"no campaign {campaign_id}")
    totals = services.track_views(promoter_id, campaign_id, counts)
    if totals is None:
        return JsonResponse({"counted": False, "reason": "the cache is unavailable"}, status=503)
    return JsonResponse(
        {
            "counted": True,
            "promoter": promoter_id,
            "campaign": campaign_id,
            **{name: getattr(totals, name) for name in COUNT_FIELDS},
            "timestamp": totals.timestamp.isoformat() if totals.timestamp else None,
        }
    )


@require_safe
def bot_score(request: HttpRequest, promoter_id: int, campaign_id: int) -> JsonResponse:
    """``GET /api/bot-score/<promoter>/<campaign>/``: the cached bot analysis (or a fresh one)."""
    analysis, cached = services.bot_score(promoter_id, campaign_id)
    return JsonResponse(
        {
            "promoter": promoter_id,
            "campaign": campaign_id,
            "score": analysis.score,
            "action": analysis.action,
            "reason": analysis.reason,
            "analysed_at": analysis.analysed_at.isoformat() if analysis.analysed_at else None,
            "cached": cached,
        }
    )


@require_safe
def daily_payout(request: HttpRequest, day: str) -> JsonResponse:
    """``GET /api/payouts/<YYYY-MM-DD>/``: the day's payouts, from the payouts manager."""
    try:
        date = datetime.date.fromisoformat(day)
    except ValueError:
        return _bad_request("the date must be YYYY-MM-DD")
    payout = services.daily_payout(date)
    if payout is None:
        return JsonResponse({"error": f"no payouts on {date}"}, status=404)
    return JsonResponse(
        {
            "date": payout.date.isoformat(),
            "total_amount": str(payout.total_amount),
            "processed_count": payout.processed_count,
            "pending_count": payout.pending_count,
        }
    )
