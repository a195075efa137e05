"""URLs to include in a project: ``path("", include("django_creator_cache.urls"))``.

``health/cache/`` answers for every alias on this backend, ``health/cache/<alias>/``
for one; see ``views.health``.
"""

from __future__ import annotations

from django.urls import path

from .views.health import health

app_name = "django_creator_cache"

urlpatterns = [
    path("health/cache/", health, name="health"),
    path("health/cache/<str:alias>/", health, name="health-alias"),
]
