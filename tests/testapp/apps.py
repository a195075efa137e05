"""Declares the invalidation rules once, where a project would: in ``ready()``."""

from __future__ import annotations

from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "tests.testapp"
    label = "testapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_creator_cache.invalidation.models import invalidate_on

        from .models import Campaign, Promoter

        invalidate_on(
            Campaign,
            prefixes=["campaigns", "dashboard"],
            tags=lambda c: [f"campaign:{c.pk}", f"owner:{c.owner}"],
        )
        invalidate_on(Promoter, prefixes=lambda p: [f"promoters:{p.pk}"], tags=["promoters"])
