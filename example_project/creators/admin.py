from django.contrib import admin

from .models import Campaign


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("creator_name", "platform", "budget", "status", "created_at")
    list_filter = ("platform", "status")
    search_fields = ("creator_name",)
