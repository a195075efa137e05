"""Admin of the platform's models (saving a campaign here invalidates its cached pages)."""

from __future__ import annotations

from django.contrib import admin

from .models import Campaign, Payout, Promoter, ViewSnapshot


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("creator_name", "platform", "budget", "status", "created_at")
    list_filter = ("platform", "status")
    search_fields = ("creator_name",)


@admin.register(Promoter)
class PromoterAdmin(admin.ModelAdmin):
    list_display = ("handle", "platform", "followers", "joined_at")
    list_filter = ("platform",)
    search_fields = ("handle",)


@admin.register(ViewSnapshot)
class ViewSnapshotAdmin(admin.ModelAdmin):
    list_display = ("promoter", "campaign", "views", "likes", "comments", "shares", "taken_at")
    list_select_related = ("promoter", "campaign")
    raw_id_fields = ("promoter", "campaign")
    date_hierarchy = "taken_at"


@admin.register(Payout)
class PayoutAdmin(admin.ModelAdmin):
    list_display = ("date", "amount", "processed_count", "pending_count")
    date_hierarchy = "date"
