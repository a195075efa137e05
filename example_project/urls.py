"""URLs of the example project."""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

from example_project.creators import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.dashboard, name="dashboard"),
    path("campaigns/", views.campaign_list, name="campaign-list"),
    path("campaigns/<int:pk>/", views.campaign_detail, name="campaign-detail"),
    path("api/views/", views.track_views, name="api-views"),
    path(
        "api/bot-score/<int:promoter_id>/<int:campaign_id>/",
        views.bot_score,
        name="api-bot-score",
    ),
    path("api/payouts/<str:day>/", views.daily_payout, name="api-payout"),
    path("admin/", admin.site.urls),
    # The package's health check (ping + latency per alias), for load balancers: /health/cache/.
    path("", include("django_creator_cache.urls")),
]
