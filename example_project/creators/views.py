from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from example_project import cacheinfo

from .services import CAMPAIGNS_TTL, campaign_list


def home(request: HttpRequest) -> HttpResponse:
    """Campaigns, read through the cache; ``X-Cache`` says whether the list was cached."""
    campaigns, hit = campaign_list()
    response = render(
        request,
        "creators/home.html",
        {
            "campaigns": campaigns,
            "cache_hit": hit,
            "cache_ttl": CAMPAIGNS_TTL,
            "cache": cacheinfo.describe(),
        },
    )
    response["X-Cache"] = "HIT" if hit else "MISS"
    return response
