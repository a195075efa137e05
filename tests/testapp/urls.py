from __future__ import annotations

from django.urls import path

from . import privacy, views

urlpatterns = [
    path("page/", views.page),
    path("default/", views.default_options),
    path("paged/", views.paged),
    path("status/<int:code>/", views.status),
    path("missing/", views.missing),
    path("cookie/", views.cookie),
    path("private/", views.private),
    path("csrf/", views.csrf),
    path("flash/add/", views.add_message),
    path("flash/", views.flash),
    path("anyone/", views.anyone),
    path("mine/", views.mine),
    path("lang/", views.lang),
    path("policy/", views.policy),
    path("slow/", views.slow),
    path("slow-cookie/", views.slow_cookie),
    path("campaigns/<int:pk>/", views.campaign),
    path("campaigns/", views.CampaignList.as_view()),
    path("dashboard/", views.dashboard),
    path("async/", views.async_page),
    path("django-cache-page/", views.django_cache_page),
    path("binary/", views.binary),
    path("async-binary/", views.async_binary),
    *privacy.urlpatterns,
]
