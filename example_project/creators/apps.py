"""The creators app: declares, once, which cached entries each model change makes stale."""

from __future__ import annotations

from django.apps import AppConfig


class CreatorsConfig(AppConfig):
    name = "example_project.creators"
    label = "creators"
    verbose_name = "Creators"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_creator_cache.invalidation.models import invalidate_on

        from . import signals
        from .models import Campaign, Payout, Promoter, ViewSnapshot

        # Applied when the transaction commits; a rolled-back change invalidates nothing.
        invalidate_on(
            Campaign,
            prefixes=["campaigns", "dashboard"],
            tags=lambda campaign: [f"campaign:{campaign.pk}"],
        )
        # Views and handles are shown on the dashboard, the list and campaign pages (also
        # in the warmed summaries, which warmers cannot tag: hence the prefix, not a tag).
        invalidate_on(ViewSnapshot, prefixes=["dashboard", "campaigns"])
        invalidate_on(Promoter, prefixes=["dashboard", "campaigns"])
        invalidate_on(Payout, prefixes=["dashboard"])
        signals.connect()
